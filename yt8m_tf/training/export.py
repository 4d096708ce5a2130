"""SavedModel export for batch prediction, like google/youtube-8m's export_model.py.

The serving signature `serving_default` takes `example_bytes`, a 1-D tf.string tensor of serialized records
(tf.train.Example for video-level models, tf.train.SequenceExample for frame-level ones: the official files'
records), parses them with the training reader's own batch parser, and returns

* `video_id`      tf.string [B]
* `class_indexes` int32 [B, top_k]  (top_k = min(top_k, num_classes)), by descending score
* `predictions`   float32 [B, top_k] the matching scores

The export directory also holds the model settings (`model_flags.json`), so it is self-describing. It is written
to a temporary directory beside `export_dir` and renamed into place, so a killed export never leaves a partial one.
"""

import os
import shutil
import uuid

import tensorflow as tf

from yt8m_tf import registry
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


def _remove(path):
    if "://" in path:
        tf.io.gfile.rmtree(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


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
    parent, name = os.path.split(export_dir)
    if parent:
        tf.io.gfile.makedirs(parent)
    tmp = os.path.join(parent, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tf.saved_model.save(module, tmp, signatures={SIGNATURE_KEY: module.serve})
        train_dir_lib.write_json(os.path.join(tmp, train_dir_lib.SETTINGS_FILE), settings)
        old = None
        if tf.io.gfile.exists(export_dir):  # replace: move the old one aside, then drop it after the rename
            old = os.path.join(parent, f".{name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            tf.io.gfile.rename(export_dir, old)
        tf.io.gfile.rename(tmp, export_dir)
        if old is not None:
            _remove(old)
    finally:
        if tf.io.gfile.exists(tmp):
            _remove(tmp)
    return export_dir
