"""yt8m_tf/training/export.py: the SavedModel's serving signature parses official records and returns the same top-k
as the model in process."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from yt8m_tf import flags as flags_lib, registry, synthetic
from yt8m_tf.training import export as export_lib
from yt8m_tf.training.evaluation import model_inputs


MODEL_DEFAULTS = flags_lib.default_model_settings()
NUM_CLASSES = 30

CASES = {
    "video": dict(feature_names="mean_rgb,mean_audio", feature_sizes="8,4", num_classes=NUM_CLASSES),
    "frame": dict(frame_features=True, model="MeanPoolingModel", video_level_classifier_model="MoeModel",
                  feature_names="rgb,audio", feature_sizes="8,4", num_classes=NUM_CLASSES, max_frames=16),
}


@pytest.mark.parametrize("level", ["video", "frame"])
def test_serving_signature_round_trip(level, tmp_path):
    settings = dict(MODEL_DEFAULTS, **CASES[level])
    keras.utils.set_random_seed(0)
    model = registry.build_model(settings)
    for variable in model.trainable_variables:
        variable.assign(variable * 3.0)
    files = synthetic.write_dataset(str(tmp_path / "data"), level=level, num_shards=1, videos_per_shard=9,
                                    num_classes=NUM_CLASSES, rgb_size=8, audio_size=4, min_frames=1, max_frames=30,
                                    zero_frame_videos=1, with_labels=level == "video")
    records = [r.numpy() for r in tf.data.TFRecordDataset(files)]

    export_dir = str(tmp_path / "export" / "step_5")
    assert export_lib.export(model, settings, export_dir, top_k=7) == export_dir
    export_lib.export(model, settings, export_dir, top_k=7)  # replacing an export works
    assert sorted(os.listdir(tmp_path / "export")) == ["step_5"]  # no temporary or old directory left
    with open(os.path.join(export_dir, "model_flags.json")) as f:
        assert json.load(f) == settings

    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    outputs = serving(example_bytes=tf.constant(records))
    assert outputs["video_id"].dtype == tf.string and outputs["class_indexes"].dtype == tf.int32
    assert outputs["predictions"].dtype == tf.float32 and outputs["predictions"].shape == (9, 7)

    batch = next(iter(registry.make_reader(settings).dataset(files[0], 64)))
    expected_scores, expected_classes = tf.math.top_k(model(model_inputs(batch), training=False)["predictions"], 7)
    np.testing.assert_array_equal(outputs["video_id"].numpy(), batch["video_ids"].numpy())
    np.testing.assert_array_equal(outputs["class_indexes"].numpy(), expected_classes.numpy())
    np.testing.assert_allclose(outputs["predictions"].numpy(), expected_scores.numpy(), rtol=1e-5, atol=1e-7)
    # Any batch size (one record here).
    single = serving(example_bytes=tf.constant(records[:1]))
    np.testing.assert_array_equal(single["class_indexes"].numpy(), expected_classes.numpy()[:1])
