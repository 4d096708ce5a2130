"""Pooling layers g (paper 2.2) other than the LSTM: CNN, position encoding, attention, adaptive noise, baselines."""

import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_testing import assert_padding_invariant, run_layer_test
from yt8m_tf.pooling import (AdaptiveNoisePooling, DBoFPooling, IndirectClusteringPooling, MaxPooling, MeanPooling,
                             PositionEncodingPooling, TemporalCNNPooling, sample_random_frames,
                             sample_random_sequence)
from yt8m_tf.pooling.frame_sampling import sample_sequence_input
from yt8m_tf.pooling.position_encoding import position_encoding_matrix

D = 12
T = 9


def _batch(seed=0, batch=4, steps=T, width=D):
    rng = np.random.default_rng(seed)
    frames = rng.normal(size=(batch, steps, width)).astype(np.float32)
    num_frames = np.array([steps, 3, 1, 0][:batch], np.int32)
    for b, n in enumerate(num_frames):
        frames[b, n:] = 0.0
    return frames, num_frames


def _numpy_valid(frames, num_frames):
    return [frames[b, :n] for b, n in enumerate(num_frames)]


def _check_common(cls, kwargs, width, frames=None, num_frames=None, **test_kwargs):
    if frames is None:
        frames, num_frames = _batch()
    layer, out = run_layer_test(cls, kwargs, (frames, num_frames), (len(frames), width), **test_kwargs)
    assert layer.output_dim(frames.shape[-1]) == width
    assert_padding_invariant(layer, frames, num_frames)
    zero_row = np.asarray(out)[num_frames == 0]
    assert np.all(np.isfinite(zero_row))
    return layer, np.asarray(out)


# ----------------------------------------------------------------------------------------------------- baselines
def test_mean_and_max_pooling_values():
    frames, num_frames = _batch()
    _, mean = _check_common(MeanPooling, {}, D, frames, num_frames)
    _, peak = _check_common(MaxPooling, {}, D, frames, num_frames)
    for b, valid in enumerate(_numpy_valid(frames, num_frames)):
        expected_mean = valid.mean(0) if len(valid) else np.zeros(D)
        expected_max = valid.max(0) if len(valid) else np.zeros(D)
        np.testing.assert_allclose(mean[b], expected_mean, atol=1e-6)
        np.testing.assert_allclose(peak[b], expected_max, atol=1e-6)


@pytest.mark.parametrize("kwargs", [
    dict(cluster_size=16, hidden_size=8, sample_frames=4),
    dict(cluster_size=16, hidden_size=8, add_batch_norm=False, pooling_method="average", activation="sigmoid",
         sample_frames=3, sample_random_frames=False),
])
def test_dbof_pooling(kwargs):
    layer, out = _check_common(DBoFPooling, kwargs, 8)
    frames, num_frames = _batch()
    train_out = np.asarray(layer(frames, num_frames, training=True))  # sampled frames, 0-frame video included
    assert train_out.shape == (4, 8) and np.all(np.isfinite(train_out))
    weights = {w.path.split("/")[-1] for w in layer.weights}
    assert {"cluster_weights", "hidden1_weights"} <= weights


def test_dbof_defaults_match_starter_flags():
    layer = DBoFPooling()
    assert (layer.cluster_size, layer.hidden_size, layer.add_batch_norm, layer.pooling_method, layer.activation,
            layer.sample_frames, layer.sample_random_frames) == (8192, 1024, True, "max", "sigmoid", 30, True)
    assert layer.output_dim(1152) == 1024


def test_dbof_activation_flag_and_old_train_dirs():
    """--dbof_activation defaults to the starter's sigmoid; settings saved before the flag existed (no key) were
    trained with the hard-coded relu6 and still build that."""
    from yt8m_tf import flags as flags_lib, registry

    settings = flags_lib.default_model_settings(model="DbofModel", frame_features=True, feature_names="rgb,audio",
                                                feature_sizes="8,4", num_classes=5, max_frames=4,
                                                dbof_cluster_size=8, dbof_hidden_size=4)
    assert settings["dbof_activation"] == "sigmoid"
    assert registry.make_layers(settings)[0].activation == "sigmoid"
    old = {k: v for k, v in settings.items() if k != "dbof_activation"}
    assert registry.make_layers(old)[0].activation == "relu6"
    frames = np.random.default_rng(0).normal(size=(2, 4, 12)).astype(np.float32) * 5
    out = np.asarray(DBoFPooling(8, 4, add_batch_norm=False, activation="relu6")(frames, np.array([4, 2])))
    assert out.min() >= 0.0 and out.max() <= 6.0


def test_sequence_input_of_willow_lstm_random_sequence():
    """WILLOW's --lstm_random_sequence input: K = 6 frames, run length min(num_frames, K). Evaluation: frame
    floor(u_k * n) for u_k = frac((k + 1) * 0.618...) (by hand: 0.618, 0.236, 0.854, 0.472, 0.090, 0.708), the same
    for a video alone or in a batch; training: fresh valid draws."""
    frames = np.tile(np.arange(10, dtype=np.float32)[None, :, None], (4, 1, 3)) + 1.0  # value = index + 1
    num_frames = np.array([10, 4, 1, 0], np.int32)
    out, length = (np.asarray(v) for v in sample_sequence_input(frames, num_frames, 6, training=False))
    np.testing.assert_array_equal(length, [6, 4, 1, 0])
    np.testing.assert_array_equal(out[0, :, 0] - 1, [6, 2, 8, 4, 0, 7])
    np.testing.assert_array_equal(out[1, :, 0] - 1, [2, 0, 3, 1, 0, 2])
    np.testing.assert_array_equal(out[2, :, 0] - 1, 0)
    np.testing.assert_array_equal(out[3], 0.0)
    alone, _ = sample_sequence_input(frames[1:2], num_frames[1:2], 6, training=False)
    np.testing.assert_array_equal(alone, out[1:2])
    generator = keras.random.SeedGenerator(1)
    draws = [np.asarray(sample_sequence_input(frames, num_frames, 6, training=True, seed=generator)[0])[..., 0] - 1
             for _ in range(2)]
    for draw in draws:
        assert np.all((draw[:3] >= 0) & (draw[:3] < num_frames[:3, None]))
    assert not np.array_equal(draws[0][0], draws[1][0])


def test_sample_random_frames_and_sequence():
    batch, steps, samples = 4, 10, 6
    frames = np.tile(np.arange(steps, dtype=np.float32)[None, :, None], (batch, 1, 3)) + 1.0  # value = index + 1
    num_frames = np.array([10, 4, 1, 0], np.int32)
    for sampler in (sample_random_frames, sample_random_sequence):
        out = np.asarray(sampler(frames, num_frames, samples, seed=3))
        assert out.shape == (batch, samples, 3)
        index = out[..., 0] - 1.0
        for b, n in enumerate(num_frames):
            if n == 0:
                assert np.all(out[b] == 0.0)
            else:
                assert np.all((index[b] >= 0) & (index[b] < n)), (sampler.__name__, index[b], n)
        if sampler is sample_random_sequence:
            np.testing.assert_array_equal(np.diff(index[0]), 1.0)  # consecutive when n >= samples
            np.testing.assert_array_equal(index[2], 0.0)  # a 1-frame video repeats its frame

    @tf.function(jit_compile=True)
    def sample(x, n):
        return sample_random_frames(x, n, samples, seed=1), sample_random_sequence(x, n, samples, seed=2)

    a, s = sample(tf.constant(frames), tf.constant(num_frames))
    assert a.shape == (batch, samples, 3) and s.shape == (batch, samples, 3)
    for out in (np.asarray(a), np.asarray(s)):
        for b, n in enumerate(num_frames):
            assert np.all(out[b, :, 0] <= n)  # index + 1 <= n, zero for n = 0


# ---------------------------------------------------------------------------------------------------------- CNN
def _numpy_cnn(frames, num_frames, kernel, bias, kernel_size):
    out = []
    for valid in _numpy_valid(frames, num_frames):
        if len(valid) == 0:
            out.append(np.zeros(kernel.shape[-1]))
            continue
        if len(valid) < kernel_size:
            valid = np.concatenate([valid, np.zeros((kernel_size - len(valid), valid.shape[1]))])
        windows = [valid[t:t + kernel_size] for t in range(len(valid) - kernel_size + 1)]
        conv = np.stack([np.einsum("kd,kdf->f", w, kernel) + bias for w in windows])
        out.append(np.maximum(conv, 0.0).max(0))
    return np.stack(out)


@pytest.mark.parametrize("kernel_size", [5, 2])
def test_temporal_cnn_matches_numpy(kernel_size):
    frames, num_frames = _batch()
    layer, out = _check_common(TemporalCNNPooling, dict(filters=6, kernel_size=kernel_size), 6, frames, num_frames)
    kernel, bias = [np.asarray(w) for w in layer.conv.weights]
    assert kernel.shape == (kernel_size, D, 6)  # height c_v x full feature width c_h
    np.testing.assert_allclose(out, _numpy_cnn(frames, num_frames, kernel, bias, kernel_size), atol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)  # 0-frame video


def test_temporal_cnn_input_shorter_than_kernel_and_l2():
    frames, num_frames = _batch(steps=3)
    num_frames = np.array([3, 3, 1, 0], np.int32)
    layer = TemporalCNNPooling(filters=4, kernel_size=5, l2_normalize=True)
    out = np.asarray(layer(frames, num_frames))
    assert out.shape == (4, 4) and np.all(np.isfinite(out))
    norms = np.linalg.norm(out, axis=1)
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))


# ------------------------------------------------------------------------------------------- position encoding
def test_position_encoding_matrix_by_hand():
    # T = 2, D = 3, 1-based i, j: L_ij = (1 - i/2) - (j/3)(1 - i).
    # i = 1: 0.5 - (j/3) * 0 = 0.5;  i = 2: 0 - (j/3)(-1) = j/3.
    expected = np.array([[0.5, 0.5, 0.5], [1 / 3, 2 / 3, 1.0]])
    np.testing.assert_allclose(position_encoding_matrix(2.0, 2, 3), expected, atol=1e-6)
    frames = np.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [9.0, 9.0, 9.0]]], np.float32)  # third frame: padding
    out = np.asarray(PositionEncodingPooling()(frames, np.array([2], np.int32)))
    np.testing.assert_allclose(out[0], [0.5 + 4 / 3, 1.0 + 10 / 3, 1.5 + 6.0], atol=1e-5)


def test_position_encoding_layer():
    frames, num_frames = _batch()
    _, out = _check_common(PositionEncodingPooling, dict(length="num_frames"), D, frames, num_frames)
    for b, valid in enumerate(_numpy_valid(frames, num_frames)):
        if len(valid):
            weights = np.asarray(position_encoding_matrix(float(len(valid)), len(valid), D))
            np.testing.assert_allclose(out[b], (valid * weights).sum(0), atol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)


def test_position_encoding_max_frames_mode():
    frames, num_frames = _batch()
    # Fixed T = 300 (the original code's J): independent of the padded length, so still padding-invariant.
    layer, out = run_layer_test(PositionEncodingPooling, dict(length="max_frames", fixed_length=300),
                                (frames, num_frames), (4, D))
    assert_padding_invariant(layer, frames, num_frames)
    weights = np.asarray(position_encoding_matrix(300.0, T, D))
    np.testing.assert_allclose(out[1], (frames[1, :3] * weights[:3]).sum(0), atol=1e-5)
    # fixed_length=None: T is the padded length, so extra padding changes the output (documented).
    padded_len = PositionEncodingPooling(length="max_frames", fixed_length=None)
    extra = np.concatenate([frames, np.zeros((4, 5, D), np.float32)], 1)
    assert not np.allclose(padded_len(frames, num_frames), padded_len(extra, num_frames))


# ------------------------------------------------------------------------------------------------- attention
def _numpy_attention(frames, num_frames, alpha=1.0):
    out, weights = [], []
    for valid in _numpy_valid(frames.astype(np.float64), num_frames):
        if len(valid) == 0:
            out.append(np.zeros(frames.shape[-1]))
            weights.append(np.zeros(0))
            continue
        logits = alpha * np.array([sum(valid[t] @ valid[i] for i in range(len(valid))) for t in range(len(valid))])
        p = np.exp(logits - logits.max())
        p /= p.sum()
        weights.append(p)
        out.append((p[:, None] * valid).sum(0))
    return np.stack(out), weights


def test_indirect_clustering_matches_numpy():
    frames, num_frames = _batch()
    frames *= 0.3  # moderate logits so the softmax is not one-hot
    layer, out = _check_common(IndirectClusteringPooling, dict(alpha=0.5), D, frames, num_frames)
    expected, expected_weights = _numpy_attention(frames, num_frames, alpha=0.5)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    weights = np.asarray(layer.attention_weights(frames, num_frames))
    for b, n in enumerate(num_frames):
        np.testing.assert_allclose(weights[b, :n], expected_weights[b], atol=1e-6)
        np.testing.assert_array_equal(weights[b, n:], 0.0)
    np.testing.assert_array_equal(out[3], 0.0)


def test_indirect_clustering_large_logits_and_mixed_precision():
    rng = np.random.default_rng(1)
    frames = rng.uniform(-2, 2, size=(3, 10, 1152)).astype(np.float32)  # logits ~ 1e4..1e5
    num_frames = np.array([10, 4, 0], np.int32)
    out = np.asarray(IndirectClusteringPooling()(frames, num_frames))
    assert np.all(np.isfinite(out)) and np.all(out[2] == 0.0)
    half = IndirectClusteringPooling(dtype="mixed_float16")
    out16 = half(frames.astype(np.float16), num_frames)
    assert out16.dtype == "float16" and np.all(np.isfinite(np.asarray(out16, np.float32)))
    np.testing.assert_allclose(np.asarray(out16, np.float32), out, atol=2e-2)


# ------------------------------------------------------------------------------------------------ adaptive noise
def _labels(num_classes=5):
    labels = np.zeros((4, num_classes), np.float32)
    labels[0, [0, 1]] = 1.0
    labels[1, 2] = 1.0
    labels[2, [3, 4]] = 1.0
    return labels  # video 3 has no labels


COUNTS = [100, 300, 50, 0, 10]


def test_adaptive_noise_layer_test_and_gamma():
    frames, num_frames = _batch()
    labels = _labels()
    layer, out = run_layer_test(AdaptiveNoisePooling, dict(num_classes=5, class_counts=COUNTS, scale=1.0),
                                (frames, num_frames, labels), (4, D))
    assert AdaptiveNoisePooling.uses_labels and layer.output_dim(D) == D
    assert "class_counts" not in layer.get_config()
    assert_padding_invariant(layer, frames, num_frames, labels=labels)
    expected_sum = np.stack([v.sum(0) if len(v) else np.zeros(D) for v in _numpy_valid(frames, num_frames)])
    np.testing.assert_allclose(out, expected_sum, atol=1e-5)
    # gamma = mean of 1/max(S, 1) over the labels; S = 0 is clipped to 1; no labels -> 0.
    gamma = np.asarray(layer.noise_std(labels))
    np.testing.assert_allclose(gamma, [(1 / 100 + 1 / 300) / 2, 1 / 50, (1.0 + 1 / 10) / 2, 0.0], rtol=1e-6)


def test_adaptive_noise_only_in_training_with_magnitude_gamma():
    rng = np.random.default_rng(2)
    num_classes, width, steps = 3, 64, 10
    frames = rng.normal(size=(6, steps, width)).astype(np.float32)
    num_frames = np.array([10, 10, 4, 4, 1, 0], np.int32)
    labels = np.zeros((6, num_classes), np.float32)
    labels[:, 0] = 1.0
    labels[::2, 1] = 1.0
    layer = AdaptiveNoisePooling(num_classes=num_classes, class_counts=[200, 40, 5], scale=50.0, seed=0)
    clean = np.asarray(layer(frames, num_frames, labels, training=False))
    np.testing.assert_allclose(np.asarray(layer(frames, num_frames, training=True)), clean, atol=1e-6)  # no labels
    gamma = 50.0 * np.asarray(layer.noise_std(labels))
    diffs = np.stack([np.asarray(layer(frames, num_frames, labels, training=True)) - clean for _ in range(40)])
    for b, n in enumerate(num_frames):
        if n == 0:
            np.testing.assert_array_equal(diffs[:, b], 0.0)
            continue
        empirical = diffs[:, b].std() / np.sqrt(n)  # sum of n i.i.d. N(0, gamma^2) per feature
        assert abs(empirical / gamma[b] - 1.0) < 0.1, (b, empirical, gamma[b])


def test_adaptive_noise_counts_saved_in_keras_file():
    frames, num_frames = _batch()
    labels = _labels()
    inputs = [keras.Input((T, D)), keras.Input((), dtype="int32"), keras.Input((5,))]
    model = keras.Model(inputs, AdaptiveNoisePooling(num_classes=5, class_counts=COUNTS, name="noise")(*inputs))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "noise.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(reloaded.get_layer("noise").counts), COUNTS)
    np.testing.assert_allclose(reloaded.get_layer("noise").noise_std(labels),
                               model.get_layer("noise").noise_std(labels))
    np.testing.assert_allclose(reloaded([frames, num_frames, labels]), model([frames, num_frames, labels]), atol=1e-6)


# -------------------------------------------------------------------------------------------- mixed precision
@pytest.mark.parametrize("cls,kwargs", [
    ("LSTMPooling", dict(units=4, use_input_sum=True, use_output_sum=True, l2_normalize_sums=True)),
    ("LSTMPooling", dict(units=4, use_input_sum=True, use_output_sum=True, layer_norm=True, recurrent_dropout=0.2)),
    ("TemporalCNNPooling", dict(filters=5, l2_normalize=True)),
    ("PositionEncodingPooling", dict(l2_normalize=True)),
    ("IndirectClusteringPooling", dict(l2_normalize=True)),
    ("AdaptiveNoisePooling", dict(num_classes=5, class_counts=[788288, 300, 50, 0, 10], scale=10.0)),
    ("MeanPooling", {}),
    ("MaxPooling", {}),
    ("DBoFPooling", dict(cluster_size=16, hidden_size=8)),
])
def test_mixed_float16_finite_outputs_and_gradients(cls, kwargs):
    import yt8m_tf.pooling as pooling

    layer = getattr(pooling, cls)(dtype="mixed_float16", **kwargs)
    frames, num_frames = _batch()
    extra = (tf.constant(_labels()),) if getattr(layer, "uses_labels", False) else ()
    inputs = (tf.constant(frames.astype(np.float16)), tf.constant(num_frames)) + extra
    assert layer(*inputs, training=False).dtype == "float16"

    @tf.function(jit_compile=True)
    def step(*args):
        with tf.GradientTape() as tape:
            out = layer(*args, training=True)
            loss = tf.reduce_sum(tf.cast(out, tf.float32))
        return out, tape.gradient(loss, layer.trainable_variables)

    out, grads = step(*inputs)
    assert out.dtype == "float16" and np.all(np.isfinite(np.asarray(out, np.float32)))
    for grad in grads:
        assert np.all(np.isfinite(np.asarray(grad, np.float32)))
