"""Classifiers h (paper 2.3): layer contract, starter-code formulas by hand, padding invariance, float32 outputs."""

import keras
import numpy as np
import pytest

from tests.layer_testing import assert_padding_invariant, run_layer_test
from yt8m_tf.classifiers import CLASSIFIERS, MLP, Logistic, ManyToMany, MoE

C, D, B = 10, 8, 4
RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, D)).astype("float32")
FRAMES = RNG.normal(size=(3, 5, D)).astype("float32")
NUM_FRAMES = np.array([5, 2, 0], np.int32)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("cls, kwargs", [
    (Logistic, {"num_classes": C, "bias_initializer_value": -2.0}),
    (MoE, {"num_classes": C}),
    (MoE, {"num_classes": C, "num_mixtures": 3, "hidden_size": 8}),
    (MoE, {"num_classes": C, "hidden_size": 8, "expert_hidden": False, "hidden_activation": "relu"}),
    (MLP, {"num_classes": C, "hidden_sizes": (8, 8, 8), "layer_norm": True}),
    (MLP, {"num_classes": C, "hidden_sizes": (8,), "dropout": 0.1, "use_output_bias": True}),
])
def test_vector_heads_layer_contract(cls, kwargs):
    _, out = run_layer_test(cls, kwargs, (X,), (B, C))
    out = np.asarray(out)
    assert out.dtype == np.float32 and np.all((out >= 0) & (out <= 1))


def test_logistic_is_dense_sigmoid_with_bias_prior():
    layer = Logistic(C, bias_initializer_value=np.log(1 / 1000))
    out = np.asarray(layer(X))
    kernel, bias = [np.asarray(w) for w in layer.get_weights()]
    np.testing.assert_allclose(bias, np.log(1 / 1000), rtol=1e-6)
    np.testing.assert_allclose(out, _sigmoid(X @ kernel + bias), rtol=1e-5, atol=1e-6)


def test_l2_penalty_matches_slim_l2_regularizer():
    layer = Logistic(C, l2_penalty=0.1)
    layer(X)
    kernel = np.asarray(layer.logits.kernel)
    # slim.l2_regularizer(s)(w) = s * tf.nn.l2_loss(w) = s * sum(w^2) / 2; kernel only, no bias penalty.
    np.testing.assert_allclose(float(sum(layer.losses)), 0.1 * np.sum(kernel ** 2) / 2, rtol=1e-5)
    moe = MoE(C, hidden_size=8)
    moe(X)
    assert len(moe.losses) == 4  # gate_hidden, expert_hidden, gates, experts kernels


def test_moe_matches_starter_formula():
    E = 2
    layer = MoE(3, num_mixtures=E)
    x = RNG.normal(size=(2, 4)).astype("float32")
    layer(x)
    w_gate = RNG.normal(size=(4, 3 * (E + 1))).astype("float32")
    w_expert = RNG.normal(size=(4, 3 * E)).astype("float32")
    b_expert = RNG.normal(size=(3 * E,)).astype("float32")
    layer.gates.set_weights([w_gate])
    layer.experts.set_weights([w_expert, b_expert])
    # Starter MoeModel: reshape to (B*C, E+1) / (B*C, E), softmax / sigmoid, sum the first E, reshape (B, C).
    gate = (x @ w_gate).reshape(-1, E + 1)
    gate = np.exp(gate - gate.max(1, keepdims=True))
    gate /= gate.sum(1, keepdims=True)
    expert = _sigmoid((x @ w_expert + b_expert).reshape(-1, E))
    expected = (gate[:, :E] * expert).sum(1).reshape(-1, 3)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-6)
    assert not layer.gates.use_bias and layer.experts.use_bias


def test_moe_multi_layer_is_eq_16_17():
    layer = MoE(3, num_mixtures=2, hidden_size=5)
    x = RNG.normal(size=(2, 4)).astype("float32")
    layer(x)
    wg, bg = [np.asarray(w) for w in layer.gate_hidden.get_weights()]
    we, be = [np.asarray(w) for w in layer.expert_hidden_layer.get_weights()]
    (vg,) = [np.asarray(w) for w in layer.gates.get_weights()]
    ve, b = [np.asarray(w) for w in layer.experts.get_weights()]
    gate = ((x @ wg + bg) @ vg).reshape(-1, 3)  # Eq. 17, linear hidden layer
    gate = np.exp(gate) / np.exp(gate).sum(1, keepdims=True)
    expert = _sigmoid(((x @ we + be) @ ve + b).reshape(-1, 2))  # Eq. 16
    expected = (gate[:, :2] * expert).sum(1).reshape(-1, 3)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-6)


def test_mlp_layer_norm_order_dense_ln_relu():
    layer = MLP(C, hidden_sizes=(6,), layer_norm=True)
    out = np.asarray(layer(X))
    (w1,) = [np.asarray(w) for w in layer.hidden_layers[0].get_weights()]  # no bias before LN
    (wo,) = [np.asarray(w) for w in layer.logits.get_weights()]  # no output bias (original NN)
    h = X @ w1
    h = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, _sigmoid(np.maximum(h, 0) @ wo), rtol=1e-4, atol=1e-5)


def test_many_to_many_layer_contract_and_padding():
    layer, out = run_layer_test(ManyToMany, {"num_classes": C, "units": 8}, (FRAMES, NUM_FRAMES), (3, C))
    assert ManyToMany.takes_frames
    assert_padding_invariant(layer, FRAMES, NUM_FRAMES)
    np.testing.assert_array_equal(np.asarray(out)[2], 0.0)  # 0-frame video: no step to average


def test_many_to_many_averages_valid_step_scores():
    layer = ManyToMany(C, units=8)
    out = np.asarray(layer(FRAMES, NUM_FRAMES))
    kernel, bias = [np.asarray(w) for w in layer.logits.get_weights()]
    for b, n in enumerate(NUM_FRAMES[:2]):
        steps = np.asarray(layer.lstm(FRAMES[b:b + 1, :n]))[0]  # the LSTM on the valid frames only
        np.testing.assert_allclose(out[b], _sigmoid(steps @ kernel + bias).mean(0), rtol=1e-5, atol=1e-6)


def test_outputs_float32_under_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        heads = [Logistic(C), MoE(C, hidden_size=8), MLP(C, hidden_sizes=(8,), layer_norm=True)]
        for head in heads:
            assert head.compute_dtype == "bfloat16"
            assert keras.backend.standardize_dtype(head(X).dtype) == "float32", type(head).__name__
        inputs = keras.Input((D,))
        assert keras.Model(inputs, MoE(C)(inputs)).output.dtype == "float32"
        assert keras.backend.standardize_dtype(ManyToMany(C, units=8)(FRAMES, NUM_FRAMES).dtype) == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


def test_registry():
    assert set(CLASSIFIERS) == {"Logistic", "MoE", "MLP", "ManyToMany"}
    assert CLASSIFIERS["MoE"](C).num_mixtures == 2
