"""Label processing C (paper 2.4, Eq. 20): values by hand, weights, identity case, saving, normalisation."""

import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_testing import run_layer_test
from yt8m_tf.label_processing import LabelProcessing, normalize_correlation

M = np.array([[1.0, 0.0, 0.0],
              [0.5, 0.5, 0.0],
              [0.0, 0.2, 0.8]], np.float32)  # row = target class
P = np.array([[0.2, 0.4, 0.6],
              [1.0, 0.0, 0.5]], np.float32)


def test_layer_contract():
    probs = np.random.default_rng(0).random((4, 10)).astype("float32")
    run_layer_test(LabelProcessing, {"num_classes": 10, "beta": 0.1, "gamma": 0.01}, (probs,), (4, 10))


def test_eq_20_by_hand():
    layer = LabelProcessing(3, alpha=1.0, beta=0.5, gamma=0.25)
    layer.set_correlation(M)
    # M P[0] = [0.2, 0.5*0.2 + 0.5*0.4, 0.2*0.4 + 0.8*0.6] = [0.2, 0.3, 0.56]
    # O_c[0] = P[0] + 0.5 [0.2, 0.3, 0.56] + 0.25 [0.2, 0.3, 0.56] = P[0] + 0.75 [0.2, 0.3, 0.56]
    # M P[1] = [1.0, 0.5, 0.4]
    expected = np.array([[0.35, 0.625, 1.02],
                         [1.75, 0.375, 0.8]], np.float32)
    np.testing.assert_allclose(np.asarray(layer(P)), expected, rtol=1e-6)
    normalized = LabelProcessing(3, beta=0.5, gamma=0.25, normalize_weights=True)
    normalized.set_correlation(M)
    np.testing.assert_allclose(np.asarray(normalized(P)), expected / 1.75, rtol=1e-6)


def test_fixed_and_trainable_matrices():
    layer = LabelProcessing(3, beta=0.5, gamma=0.25)
    layer.set_correlation(M)
    assert [w.name for w in layer.trainable_weights] == ["trainable_correlation"]
    assert [w.name for w in layer.non_trainable_weights] == ["correlation"]
    np.testing.assert_array_equal(np.asarray(layer.trainable_correlation), M)  # M'_c initialised to M_c
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(P))
    (grad,) = tape.gradient(loss, layer.trainable_variables)
    # d/dM'[i, j] of sum_b sum_i gamma sum_j M'[i, j] P[b, j] = gamma sum_b P[b, j]
    np.testing.assert_allclose(np.asarray(grad), 0.25 * np.tile(P.sum(0), (3, 1)), rtol=1e-6)
    only_gamma = LabelProcessing(3, gamma=0.1)
    only_gamma.build((None, 3))
    assert only_gamma.correlation is None and len(only_gamma.weights) == 1


def test_identity_without_matrices():
    layer = LabelProcessing(3)
    out = layer(P)
    assert layer.weights == []
    np.testing.assert_array_equal(np.asarray(out), P)
    np.testing.assert_allclose(np.asarray(LabelProcessing(3, alpha=2.0)(P)), 2 * P)


def test_correlation_path_and_saved_model_is_self_contained():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.npy")
        np.save(path, M)
        layer = LabelProcessing(3, beta=0.5, correlation_path=path)
        inputs = keras.Input((3,))
        model = keras.Model(inputs, layer(inputs))
        np.testing.assert_array_equal(np.asarray(layer.correlation), M)
        saved = os.path.join(tmp, "model.keras")
        model.save(saved)
        os.remove(path)  # the archive must not need the .npy any more
        with pytest.warns(UserWarning, match="not found"):
            reloaded = keras.saving.load_model(saved, safe_mode=True)
    np.testing.assert_allclose(np.asarray(reloaded(P)), np.asarray(model(P)), rtol=1e-6)
    assert len(str(reloaded.layers[-1].get_config())) < 1000


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="must be"):
        LabelProcessing(4, beta=0.1).set_correlation(M)


def test_float32_under_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = LabelProcessing(3, beta=0.5)
        layer.set_correlation(M)
        out = layer(P + 1e-3)  # bfloat16 would round 0.201 to 0.2012
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        np.testing.assert_allclose(np.asarray(out)[0, 0], 0.201 * 1.5, rtol=1e-6)
    finally:
        keras.config.set_dtype_policy("float32")


def _seilna_original(counts):
    """Literal copy of the original normalisation (video_level_models.py, MoeWithLabelCorelationModel)."""
    data = counts.astype(np.float64).copy()
    for i in range(data.shape[0]):
        data[i, i] = np.average(data, axis=1)[i]
    return (data - np.average(data, axis=1)) / np.sum(data, axis=1)


def test_normalize_correlation():
    counts = np.array([[2.0, 1.0, 0.0],
                       [1.0, 3.0, 2.0],
                       [0.0, 2.0, 2.0]])
    # row: rows divided by their sums
    np.testing.assert_allclose(normalize_correlation(counts, "row")[1], [1 / 6, 3 / 6, 2 / 6], rtol=1e-6)
    # seilna, by hand for row 0: diagonal -> row mean 1, row [1, 1, 0]: mean 2/3, sum 2
    np.testing.assert_allclose(normalize_correlation(counts, "seilna")[0], [1 / 6, 1 / 6, -1 / 3], rtol=1e-6)
    # same scores as the original x @ M for any (even asymmetric) counts
    asym = np.random.default_rng(0).integers(0, 9, size=(5, 5)).astype(np.float64) + 1
    x = np.random.default_rng(1).random((2, 5))
    np.testing.assert_allclose(x @ normalize_correlation(asym, "seilna").T, x @ _seilna_original(asym), rtol=1e-5)
    with pytest.raises(ValueError, match="valid"):
        normalize_correlation(counts, "softmax")
