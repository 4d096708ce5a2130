"""WILLOW's poolings (Miech et al. 2017): NetVLAD / NetRVLAD / NetFV / Soft-DBoW encoders, the two-stream
LearnablePooling and Context Gating, each checked against a numpy reference of the original code's formulas."""

import keras
import numpy as np
import pytest

from tests.layer_testing import assert_padding_invariant, run_layer_test
from yt8m_tf.classifiers import MoE
from yt8m_tf.pooling import (ContextGating, DBoFPooling, GardenContextGate, LearnablePooling, NetFV, NetRVLAD, NetVLAD,
                             SEContextGating, SoftDBoW)

RGB, AUDIO, T = 6, 4, 7
EPS = 1e-3  # slim batch-norm epsilon


def _batch(seed=0, steps=T, width=RGB + AUDIO):
    rng = np.random.default_rng(seed)
    frames = rng.normal(size=(4, steps, width)).astype(np.float32)
    num_frames = np.array([steps, 3, 1, 0], np.int32)
    for b, n in enumerate(num_frames):
        frames[b, n:] = 0.0
    return frames, num_frames


def _randomize(layer, seed=1):
    """Moves every weight (batch-norm statistics included) off its initial value, variances kept positive."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.normal(size=w.shape).astype(np.float32) * 0.5
        w.assign(np.abs(value) + 0.5 if "variance" in w.path else value)


def _bn(x, layer):
    gamma, beta, mean, variance = [np.asarray(w) for w in layer.weights]
    return (x - mean) / np.sqrt(variance + EPS) * gamma + beta


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _l2(v):
    norm = np.sqrt((v ** 2).sum(-1, keepdims=True))
    return np.where(norm > 0, v / np.maximum(norm, 1e-6), 0.0)


def _numpy_encoder(encoder, x):
    """The original code's per-stream encoding of one video's valid frames x (n, D), evaluation mode."""
    w = np.asarray(encoder.cluster_weights)
    logits = x @ w
    logits = _bn(logits, encoder.cluster_bn) if encoder.add_batch_norm else logits + np.asarray(encoder.cluster_biases)
    a = _softmax(logits)  # (n, K)
    first = a.T @ x  # (K, D)
    flat = lambda v: _l2(v.T.reshape(-1))  # noqa: E731  (D, K) layout, D-major
    if isinstance(encoder, NetVLAD):
        return flat(_l2(first - a.sum(0)[:, None] * np.asarray(encoder.cluster_centers).T))
    if isinstance(encoder, NetRVLAD):
        return flat(_l2(first))
    if isinstance(encoder, NetFV):
        c = (encoder.coupling_factor * w if encoder.couple_weights else np.asarray(encoder.cluster_centers)).T
        sigma = (np.asarray(encoder.covar_weights) ** 2 + 1e-6).T
        mass = a.sum(0)[:, None]
        fv1 = (first - mass * c) / sigma
        fv2 = (a.T @ x ** 2 - 2 * first * c + mass * c ** 2) / sigma ** 2 - mass
        return np.concatenate([flat(_l2(fv1)), flat(fv2)])
    pieces = [_l2(a.sum(0))] + ([_l2(a.max(0))] if encoder.max_pool else [])
    return np.concatenate(pieces)


@pytest.mark.parametrize("encoder, width", [
    (NetVLAD(5), RGB * 5),
    (NetRVLAD(5, add_batch_norm=False), RGB * 5),
    (NetFV(3), 2 * RGB * 3),
    (NetFV(3, couple_weights=False, add_batch_norm=False), 2 * RGB * 3),
    (SoftDBoW(5, max_pool=True), 10),
])
def test_encoders_match_numpy(encoder, width):
    frames, num_frames = _batch(width=RGB)
    mask = np.arange(T)[None, :] < num_frames[:, None]
    encoder.build((None, None, RGB))
    _randomize(encoder)
    out = np.asarray(encoder(frames, mask, training=False))
    assert out.shape == (4, width) == (4, encoder.output_dim(RGB))
    for b, n in enumerate(num_frames[:3]):
        np.testing.assert_allclose(out[b], _numpy_encoder(encoder, frames[b, :n]), rtol=2e-4, atol=2e-5)
    np.testing.assert_array_equal(out[3], 0.0)  # no valid frame: zero encoding


def _numpy_learnable(layer, frames, num_frames):
    outputs = []
    for b, n in enumerate(num_frames):
        x = _bn(frames[b, :n], layer.input_bn) if layer.add_batch_norm else frames[b, :n]
        pieces, start = [], 0
        for encoder, size in zip(layer.encoders, layer.feature_sizes):
            pieces.append(_numpy_encoder(encoder, x[:, start:start + size]) if n else
                          np.zeros(encoder.output_dim(size)))
            start += size
        h = np.concatenate(pieces) @ np.asarray(layer.hidden_weights)
        h = np.clip(_bn(h, layer.hidden_bn), 0, 6) if layer.relu else h + np.asarray(layer.hidden_biases)
        if layer.gating:
            gate = layer.context_gating
            h = h * _sigmoid(_bn(h @ np.asarray(gate.gating_weights), gate.batch_norm))
        outputs.append(h)
    return np.stack(outputs)


# One stream per encoder: a single layer test (serialisation, .keras, XLA step) covers all four.
FOUR_STREAMS = dict(encoders=[NetVLAD(4), NetFV(2, couple_weights=False), NetRVLAD(3), SoftDBoW(3, max_pool=True)],
                    feature_sizes=(3, 3, 2, 2), hidden_size=8, relu=False, gating=True, sample_frames=5)


def test_learnable_pooling_contract_and_numpy():
    frames, num_frames = _batch()
    layer, _ = run_layer_test(LearnablePooling, FOUR_STREAMS, (frames, num_frames), (4, 8))
    assert layer.output_dim(RGB + AUDIO) == 8
    assert_padding_invariant(layer, frames, num_frames)
    _randomize(layer, seed=2)
    out = np.asarray(layer(frames, num_frames, training=False))
    np.testing.assert_allclose(out, _numpy_learnable(layer, frames, num_frames), rtol=2e-4, atol=2e-5)
    trained = np.asarray(layer(frames, num_frames, training=True))  # 5 sampled frames per video
    assert trained.shape == (4, 8) and np.all(np.isfinite(trained))


def test_learnable_pooling_relu_branch_matches_numpy():
    """relu=True (WILLOW's flag default): hidden batch norm + ReLU6 instead of a bias; no gating."""
    frames, num_frames = _batch()
    layer = LearnablePooling([NetVLAD(4), NetVLAD(2)], feature_sizes=(RGB, AUDIO), hidden_size=8)
    layer(frames, num_frames)
    _randomize(layer, seed=3)
    out = np.asarray(layer(frames, num_frames, training=False))
    np.testing.assert_allclose(out, _numpy_learnable(layer, frames, num_frames), rtol=2e-4, atol=2e-5)
    assert out.max() <= 6.0


def test_learnable_pooling_batch_statistics_ignore_padding():
    """Training mode (batch-norm statistics of the batch): garbage after num_frames changes nothing."""
    frames, num_frames = _batch()
    layer = LearnablePooling([NetVLAD(4), NetVLAD(2)], feature_sizes=(RGB, AUDIO), hidden_size=8, gating=True)
    assert_training_ignores_padding(layer, frames, num_frames)


def assert_training_ignores_padding(layer, frames, num_frames):
    """In training (batch statistics of the batch) large garbage after num_frames changes no output."""
    garbage = frames.copy()
    for b, n in enumerate(num_frames):
        garbage[b, n:] = np.random.default_rng(b).normal(size=garbage[b, n:].shape) * 10
    np.testing.assert_allclose(layer(garbage, num_frames, training=True), layer(frames, num_frames, training=True),
                               rtol=1e-4, atol=1e-5)


def test_context_gating_layers_match_numpy():
    x = np.random.default_rng(3).normal(size=(5, 8)).astype(np.float32)
    gate, _ = run_layer_test(ContextGating, {}, (x,), (5, 8))
    _randomize(gate)
    expected = x * _sigmoid(_bn(x @ np.asarray(gate.gating_weights), gate.batch_norm))
    np.testing.assert_allclose(gate(x), expected, rtol=1e-5, atol=1e-6)

    se, _ = run_layer_test(SEContextGating, {"reduction": 4}, (x,), (5, 8))
    _randomize(se)
    hidden = np.maximum(_bn(x @ np.asarray(se.squeeze_weights), se.batch_norm), 0.0)
    assert np.asarray(se.squeeze_weights).shape == (8, 2)  # 2 d^2 / r weights (Eq. 10)
    np.testing.assert_allclose(se(x), x * _sigmoid(hidden @ np.asarray(se.excite_weights)), rtol=1e-5, atol=1e-6)


def test_moe_probability_gating():
    """WILLOW's --moe_prob_gating: the MoE's probabilities p become p * sigmoid(BN(p W)), W (C, C), in float32."""
    x = np.random.default_rng(4).normal(size=(3, 6)).astype(np.float32)
    layer, _ = run_layer_test(MoE, {"num_classes": 5, "prob_gating": True}, (x,), (3, 5), run_xla=False)
    _randomize(layer.prob_gate)
    ungated = MoE(5)
    ungated(x)
    ungated.set_weights([np.asarray(w) for w in (layer.gates.kernel, layer.experts.kernel, layer.experts.bias)])
    p = np.asarray(ungated(x))
    gate = layer.prob_gate
    expected = p * _sigmoid(_bn(p @ np.asarray(gate.gating_weights), gate.batch_norm))
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        assert keras.backend.standardize_dtype(MoE(5, prob_gating=True)(x).dtype) == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


def test_garden_context_gate_matches_numpy():
    """Model Garden's gate: x * BN(sigmoid(z W + b)), z = x or BN(relu6(x W1 + b1)) (its bottleneck)."""
    x = np.random.default_rng(5).normal(size=(5, 8)).astype(np.float32)
    gate, _ = run_layer_test(GardenContextGate, {}, (x,), (5, 8))
    _randomize(gate)
    kernel, bias = np.asarray(gate.gates.kernel), np.asarray(gate.gates.bias)
    assert kernel.shape == (8, 8)
    np.testing.assert_allclose(gate(x), x * _bn(_sigmoid(x @ kernel + bias), gate.gates_norm), rtol=1e-5, atol=1e-6)

    squeezed, _ = run_layer_test(GardenContextGate, {"bottleneck_size": 3}, (x,), (5, 8))
    _randomize(squeezed)
    bottleneck = squeezed.bottleneck
    z = _bn(np.clip(x @ np.asarray(bottleneck.kernel) + np.asarray(bottleneck.bias), 0.0, 6.0),
            squeezed.bottleneck_norm)
    gates = _sigmoid(z @ np.asarray(squeezed.gates.kernel) + np.asarray(squeezed.gates.bias))
    assert np.asarray(squeezed.gates.kernel).shape == (3, 8)
    np.testing.assert_allclose(squeezed(x), x * _bn(gates, squeezed.gates_norm), rtol=1e-5, atol=1e-6)
    assert GardenContextGate(bottleneck_size=1).bottleneck is None  # 1: no bottleneck, as Model Garden


def test_garden_context_gate_per_frame_batch_statistics_ignore_padding():
    """On (B, T, d) frames each frame is gated by itself; in training the batch norms see only masked-in frames."""
    frames, num_frames = _batch()
    mask = np.arange(frames.shape[1])[None, :] < num_frames[:, None]
    gate = GardenContextGate(bottleneck_size=4)
    garbage = frames.copy()
    garbage[~mask] = np.random.default_rng(2).normal(size=garbage[~mask].shape) * 10
    clean = np.asarray(gate(frames, training=True, mask=mask))
    np.testing.assert_allclose(np.asarray(gate(garbage, training=True, mask=mask))[mask], clean[mask], rtol=1e-4,
                               atol=1e-5)
    one = np.asarray(gate(frames[:1, :2], training=False))  # inference: a frame's gate depends on that frame only
    np.testing.assert_allclose(np.asarray(gate(frames[:1], training=False))[:, :2], one, rtol=1e-5, atol=1e-6)


def test_dbof_cluster_context_gate():
    """Model Garden's `use_context_gate_cluster_layer`: the gate sits between the cluster activation and pooling."""
    frames, num_frames = _batch()
    kwargs = dict(cluster_size=6, hidden_size=4, sample_frames=0, activation="relu", pooling_method="average",
                  context_gate=True, context_gate_bottleneck_size=0)
    layer, out = run_layer_test(DBoFPooling, kwargs, (frames, num_frames), (len(frames), 4))
    assert_padding_invariant(layer, frames, num_frames)
    _randomize(layer)
    expected = []
    for b, n in enumerate(num_frames):
        x = _bn(frames[b, :n], layer.input_bn) @ np.asarray(layer.cluster_weights)
        x = np.maximum(_bn(x, layer.cluster_bn), 0.0)
        gate = layer.cluster_gate
        x = x * _bn(_sigmoid(x @ np.asarray(gate.gates.kernel) + np.asarray(gate.gates.bias)), gate.gates_norm)
        pooled = x.mean(0) if n else np.zeros(6, np.float32)
        expected.append(np.maximum(_bn(pooled @ np.asarray(layer.hidden_weights), layer.hidden_bn), 0.0))
    np.testing.assert_allclose(layer(frames, num_frames), np.stack(expected), rtol=1e-4, atol=1e-5)
    assert_training_ignores_padding(layer, frames, num_frames)


def test_moe_garden_context_gates():
    """Model Garden's `use_input_context_gate` / `use_output_context_gate`: MoE(gate_in(x)), then gate_out(p)."""
    x = np.random.default_rng(6).normal(size=(3, 6)).astype(np.float32)
    kwargs = {"num_classes": 5, "input_context_gate": True, "output_context_gate": True}
    layer, _ = run_layer_test(MoE, kwargs, (x,), (3, 5))
    _randomize(layer)
    plain = MoE(5)
    plain(x)
    plain.set_weights([np.asarray(w) for w in (layer.gates.kernel, layer.experts.kernel, layer.experts.bias)])

    def gated(v, gate):
        return v * _bn(_sigmoid(v @ np.asarray(gate.gates.kernel) + np.asarray(gate.gates.bias)), gate.gates_norm)

    expected = gated(np.asarray(plain(gated(x, layer.input_gate))), layer.output_gate)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-6)
