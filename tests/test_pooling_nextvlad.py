"""NeXtVLAD (Lin et al. 2018): the encoder against a numpy transcription of Eq. 5-8, the two-stream pooling, the
gated mixture, and the paper's parameter formula (Eq. 9-10)."""

import numpy as np
import pytest

from tests import test_pooling_vlad
from tests.layer_testing import assert_padding_invariant, run_layer_test
from tests.test_pooling_vlad import _bn, _l2, _randomize, _sigmoid, _softmax
from yt8m_tf.classifiers import Logistic, NeXtVLADMixture
from yt8m_tf.pooling import NeXtVLAD, NeXtVLADPooling

RGB, AUDIO, T = 8, 4, 6


def _batch(seed=0):
    return test_pooling_vlad._batch(seed, steps=T, width=RGB + AUDIO)


def _numpy_nextvlad(layer, x):
    """Eq. 5-8 for one video's valid frames x (M, N), then intra-normalisation and the batch norm (evaluation)."""
    g, k = layer.groups, layer.cluster_size
    expanded = x @ np.asarray(layer.expansion_weights) + np.asarray(layer.expansion_biases)  # (M, lambda N)
    attention = _sigmoid(expanded @ np.asarray(layer.attention_weights) + np.asarray(layer.attention_biases))  # Eq. 7
    logits = _bn(expanded @ np.asarray(layer.cluster_weights), layer.cluster_bn).reshape(len(x), g, k)
    assignment = _softmax(logits)  # Eq. 6, (M, G, K)
    grouped = expanded.reshape(len(x), g, -1)  # x~ (M, G, lambda N / G)
    centers = np.asarray(layer.cluster_centers)  # (lambda N / G, K)
    y = np.zeros_like(centers)
    for i in range(len(x)):  # Eq. 5 and 8: sum over frames i and groups g of alpha_g alpha_gk (x~_ij^g - c_kj)
        for group in range(g):
            for cluster in range(k):
                y[:, cluster] += (attention[i, group] * assignment[i, group, cluster]
                                  * (grouped[i, group] - centers[:, cluster]))
    return _bn(_l2(y.T).T.reshape(-1), layer.vlad_bn)


def test_nextvlad_encoder_matches_eq_5_to_8():
    frames, num_frames = _batch()
    mask = np.arange(T)[None, :] < num_frames[:, None]
    layer = NeXtVLAD(cluster_size=3, groups=4, expansion=2)
    layer.build((None, None, RGB))
    _randomize(layer)
    out = np.asarray(layer(frames[..., :RGB], mask, training=False))
    assert out.shape == (4, 3 * 2 * RGB // 4) == (4, layer.output_dim(RGB))
    for b, n in enumerate(num_frames[:3]):
        np.testing.assert_allclose(out[b], _numpy_nextvlad(layer, frames[b, :n, :RGB]), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(out[3], _bn(np.zeros(out.shape[1]), layer.vlad_bn), rtol=1e-5, atol=1e-6)


def _pooling_kwargs(**overrides):
    return {**dict(feature_sizes=(RGB, AUDIO), cluster_size=4, groups=4, expansion=2, hidden_size=8,
                   gating_reduction=2), **overrides}


def _mixture_kwargs(members, num_classes=5, dtype=None, **pooling_overrides):
    """`NeXtVLADMixture` arguments as the registry builds them: `members` NeXtVLAD poolings and logistic heads."""
    return dict(poolings=[NeXtVLADPooling(**_pooling_kwargs(**pooling_overrides), dtype=dtype, name=f"branch_{m}")
                          for m in range(members)],
                heads=[Logistic(num_classes, dtype=dtype, name=f"branch_{m}_logistic") for m in range(members)],
                **({"dtype": dtype} if dtype else {}))


def test_nextvlad_pooling_contract():
    frames, num_frames = _batch()
    layer, _ = run_layer_test(NeXtVLADPooling, _pooling_kwargs(dropout=0.5, seed=1), (frames, num_frames), (4, 8))
    assert [(e.cluster_size, e.groups) for e in layer.encoders] == [(4, 4), (2, 2)]  # audio: K/2, G/2
    assert_padding_invariant(layer, frames, num_frames)
    # Training mode (batch statistics over valid frames, no dropout): padding still changes nothing.
    layer = NeXtVLADPooling(**_pooling_kwargs(dropout=0.0))
    garbage = frames + (np.arange(T)[None, :, None] >= num_frames[:, None, None]) * 7.0
    np.testing.assert_allclose(layer(garbage, num_frames, training=True), layer(frames, num_frames, training=True),
                               rtol=1e-4, atol=1e-5)


def test_nextvlad_mixture_is_eq_12_13():
    frames, num_frames = _batch()
    # One stream per member keeps the XLA step small; the two-stream pooling is tested above.
    kwargs = _mixture_kwargs(2, dropout=0.5, feature_sizes=(RGB + AUDIO,))
    layer, out = run_layer_test(NeXtVLADMixture, kwargs, (frames, num_frames), (4, 5))
    assert_padding_invariant(layer, frames, num_frames)
    _randomize(layer, seed=4)
    out = np.asarray(layer(frames, num_frames, training=False))
    members = layer(frames, num_frames, training=False, return_members=True)
    assert {k: tuple(v.shape) for k, v in members.items()} == {
        "predictions": (4, 5), "mixture_logits": (4, 5), "member_logits": (4, 2, 5), "member_predictions": (4, 2, 5)}
    member_logits = np.stack([np.asarray(head.logits(pooling(frames, num_frames, training=False)))
                              for pooling, head in zip(layer.poolings, layer.heads)], axis=1)
    np.testing.assert_allclose(members["member_logits"], member_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(members["member_predictions"], _sigmoid(member_logits), rtol=1e-5, atol=1e-6)
    mean_frame = np.stack([frames[b, :n].mean(0) if n else np.zeros(RGB + AUDIO) for b, n in enumerate(num_frames)])
    gate = _softmax(_bn(mean_frame, layer.gate_bn) @ np.asarray(layer.gate.kernel) + np.asarray(layer.gate.bias))
    mixture = (gate[..., None] * member_logits).sum(1)  # Eq. 12-13
    np.testing.assert_allclose(members["mixture_logits"], mixture, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, _sigmoid(mixture), rtol=1e-5, atol=1e-6)


def _eq_9(n, k, g, h, expansion=2):
    """The paper's Eq. 9, lambda N (N + G + K (G + (H + 1) / G)): the kernels of one stream and its share of the
    hidden layer. (The formula's last term is the fraction (H + 1) / G, as the paper's 71M example confirms.)"""
    return expansion * n * (n + g + k * (g + (h + 1) / g))


@pytest.mark.parametrize("n, k, g, h, r", [(16, 4, 4, 8, 2), (32, 6, 8, 16, 4)])
def test_weights_are_eq_9_and_10_plus_biases_and_batch_norms(n, k, g, h, r):
    layer = NeXtVLADPooling(feature_sizes=(n,), cluster_size=k, groups=g, hidden_size=h, gating_reduction=r)
    layer.build((None, None, n))
    trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    biases = 2 * n + g  # expansion and attention biases
    batch_norms = 2 * (g * k + 2 * n // g * k + h + h // r)  # gamma, beta of cluster, vlad, hidden, gating BNs
    assert trainable == _eq_9(n, k, g, h) + 2 * h * h // r + biases + batch_norms  # Eq. 9 + Eq. 10


def test_eq_9_reproduces_the_papers_examples():
    # "a NeXtVLAD network with lambda = 2, G = 8, N = 1024, K = 128 and H = 2048 only contains 71M+ parameters"
    assert 71e6 < _eq_9(1024, 128, 8, 2048) < 72e6


def test_mixed_precision(policy="mixed_float16"):
    """Every new frame layer under mixed float16 (eager; their XLA steps run in float32 above; bfloat16 has
    float32's range): finite outputs and gradients in the compute dtype, float32 probabilities from the mixture."""
    import keras
    import tensorflow as tf

    from yt8m_tf.pooling import LearnablePooling, NetFV, NetVLAD, RecurrentPooling, SoftDBoW

    frames, num_frames = _batch()
    frames = tf.constant(frames * 3.0)
    layers = [
        LearnablePooling([NetVLAD(4), NetFV(2)], feature_sizes=(RGB, AUDIO), hidden_size=8, gating=True,
                         dtype=policy),
        LearnablePooling([SoftDBoW(4, max_pool=True), NetVLAD(2)], feature_sizes=(RGB, AUDIO), hidden_size=8,
                         dtype=policy),
        NeXtVLADPooling(**_pooling_kwargs(), dtype=policy),
        RecurrentPooling("gru", units=4, num_layers=2, bidirectional=True, dtype=policy),
        NeXtVLADMixture(**_mixture_kwargs(2, dtype=policy)),
    ]
    for layer in layers:
        with tf.GradientTape() as tape:
            out = layer(tf.cast(frames, keras.backend.standardize_dtype(layer.compute_dtype)), num_frames,
                        training=True)
            loss = tf.reduce_sum(tf.cast(out, tf.float32))
        expected = "float32" if isinstance(layer, NeXtVLADMixture) else layer.compute_dtype
        assert keras.backend.standardize_dtype(out.dtype) == expected, type(layer).__name__
        assert np.all(np.isfinite(np.asarray(tf.cast(out, tf.float32)))), type(layer).__name__
        for grad in tape.gradient(loss, layer.trainable_variables):
            assert np.all(np.isfinite(np.asarray(tf.cast(grad, tf.float32)))), type(layer).__name__
