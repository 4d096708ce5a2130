"""SavedModel export for batch prediction, like google/youtube-8m's export_model.py.

The serving signature `serving_default` takes `example_bytes`, a 1-D tf.string tensor of serialized records
(tf.train.Example for video-level models, tf.train.SequenceExample for frame-level ones: the official files'
records), parses them with the training reader's own batch parser, and returns

* `video_id`      tf.string [B]
* `class_indexes` int32 [B, top_k]  (top_k = min(top_k, num_classes)), by descending score
* `predictions`   float32 [B, top_k] the matching scores

The export directory also holds the model settings (`model_flags.json`), so it is self-describing. It is written
to a temporary directory beside `export_dir` and renamed into place (yt8m_tf.atomic), so a killed export never
leaves a partial one.
"""

import os

import tensorflow as tf

from yt8m_tf import atomic, registry
from yt8m_tf.training import train_dir as train_dir_lib

SIGNATURE_KEY = "serving_default"
INPUT_KEY = "example_bytes"


class ServingModule(tf.Module):
    """Holds the Keras model (its variables are tracked through the attribute) and the serving function."""

    def __init__(self, model, reader, top_k=20):
        super().__init__(name="yt8m_serving")
        self.model = model
        self.model_variables = train_dir_lib.model_variables(model)  # tracked by path (see train_dir.model_variables)
        # Variables that are not weights (the seed-generator states of dropout layers, e.g. an LSTM's --lstm_dropout)
        # are captured by the traced call too; untracked, tf.saved_model.save refuses them.
        self.other_variables = [v for v in model.variables if v.path not in self.model_variables]
        self._reader = reader
        self._top_k = min(int(top_k), reader.num_classes)
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_KEY)])

    def _serve(self, example_bytes):
        batch = self._reader.parse_records(example_bytes)
        inputs = {"video_matrix": batch["video_matrix"], "num_frames": batch["num_frames"]}
        predictions = self.model(inputs, training=False)["predictions"]
        scores, indexes = tf.math.top_k(tf.cast(predictions, tf.float32), k=self._top_k, sorted=True)
        return {"video_id": batch["video_ids"], "class_indexes": tf.cast(indexes, tf.int32), "predictions": scores}


def export(model, settings, export_dir, top_k=20):
    """Writes the SavedModel of `model` (a built VideoClassifier) to `export_dir` and returns `export_dir`.

    `settings` are the model settings (model_flags.json); they choose the record parser (the reader the model was
    trained with, frames kept quantized for frame-level models: the model dequantizes them).
    """
    if int(top_k) <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    reader = registry.make_reader(settings)
    module = ServingModule(model, reader, top_k)
    export_dir = export_dir.rstrip("/")
    with atomic.replaced_directory(export_dir) as tmp:
        tf.saved_model.save(module, tmp, signatures={SIGNATURE_KEY: module.serve})
        train_dir_lib.write_json(os.path.join(tmp, train_dir_lib.SETTINGS_FILE), settings)
    return export_dir


def is_export(directory):
    """Whether `directory` holds an export (a SavedModel) rather than a --train_dir."""
    return tf.io.gfile.exists(os.path.join(directory, "saved_model.pb"))


def load(export_dir, jit_compile=False):
    """(model, settings, step) from an export: the model is rebuilt from its model_flags.json and its weights are
    read from the SavedModel's variables, which are a checkpoint; the SavedModel's graph is never loaded or run
    (docs/RELIABILITY.md, security). `step` comes from the directory name step_N (None for another name)."""
    settings = train_dir_lib.read_settings(export_dir)
    model = registry.build_model(settings, jit_compile=jit_compile)
    path = os.path.join(export_dir, "variables", "variables")
    try:  # the serving module tracks the weights by path under `model_variables` (ServingModule)
        tf.train.Checkpoint(model_variables=train_dir_lib.model_variables(model)).read(path) \
            .expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise train_dir_lib.TrainDirError(f"export '{export_dir}' does not fit the model in its "
                                          f"{train_dir_lib.SETTINGS_FILE} ({str(e).splitlines()[0][:200]})") from None
    name = os.path.basename(export_dir.rstrip("/"))
    step = int(name[len("step_"):]) if name.startswith("step_") and name[len("step_"):].isdigit() else None
    return model, settings, step
