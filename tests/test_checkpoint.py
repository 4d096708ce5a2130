"""Every model's weights survive a checkpoint round trip (Keras 3 keeps list-held sub-layers out of TensorFlow's
object graph, so checkpoints track weights by path: yt8m_tf.training.train_dir.model_variables)."""

import keras
import numpy as np
import pytest

from yt8m_tf import flags as yt8m_flags, registry
from yt8m_tf.training import train_dir as train_dir_lib


def _settings(model):
    frame = model not in registry.CLASSIFIERS
    return yt8m_flags.default_model_settings(
        model=model, frame_features=frame, num_classes=12, max_frames=6, lstm_cells=4, lstm_layers=2,
        feature_names="rgb,audio" if frame else "mean_rgb,mean_audio", feature_sizes="6,2", mlp_hidden_sizes="5,5",
        dbof_cluster_size=8, dbof_hidden_size=4, cnn_filters=3, video_level_classifier_model="MlpModel",
        label_beta=0.0 if model == "MixNeXtVLADModel" else 0.1, label_gamma=0.0 if model == "MixNeXtVLADModel" else 0.1,
        gru_cells=4, netvlad_cluster_size=4, netvlad_hidden_size=4,
        fv_cluster_size=4, fv_hidden_size=4, nextvlad_cluster_size=4, nextvlad_hidden_size=8, groups=2,
        gating_reduction=2, mix_number=2)


@pytest.mark.parametrize("model", registry.MODEL_NAMES)
def test_checkpoint_round_trip(model, tmp_path):
    settings = _settings(model)
    stats = {"class_counts": np.arange(1, 13)} if model == "AdaptiveNoiseModel" else {}
    keras.utils.set_random_seed(1)
    trained = registry.build_model(settings, correlation=np.eye(12, dtype=np.float32), **stats)
    path = train_dir_lib.make_checkpoint(trained).save(str(tmp_path / "model.ckpt"))
    keras.utils.set_random_seed(2)
    fresh = registry.build_model(settings)
    assert any(not np.array_equal(a, b) for a, b in zip(trained.get_weights(), fresh.get_weights()))
    train_dir_lib.make_checkpoint(fresh).restore(path).assert_existing_objects_matched()
    assert len(fresh.weights) == len(trained.weights) > 0
    for a, b in zip(trained.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
