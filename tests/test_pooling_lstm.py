"""LSTM pooling g (paper 2.2.1, Eq. 1-6): LSTM, LSTM-M, LSTM-M-O, LSTM-M-O-LN, checked against numpy."""

import numpy as np
import pytest
import tensorflow as tf

from tests.layer_testing import assert_padding_invariant, run_layer_test
from yt8m_tf.pooling import LayerNormLSTMCell, LSTMPooling

D = 8
UNITS = 8


def _batch(seed=0, batch=4, steps=7, width=D):
    rng = np.random.default_rng(seed)
    frames = rng.normal(size=(batch, steps, width)).astype(np.float32)
    num_frames = np.array([steps, 3, 1, 0][:batch], np.int32)
    for b, n in enumerate(num_frames):
        frames[b, n:] = 0.0
    return frames, num_frames


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_lstm(valid, kernel, recurrent, bias):
    """Keras LSTM (gate order i, f, g, o) over the valid frames -> (c_T, s_T, outputs)."""
    units = recurrent.shape[0]
    h, c, outputs = np.zeros(units), np.zeros(units), []
    for x in valid:
        z = x @ kernel + h @ recurrent + bias
        i, f, g, o = _sigmoid(z[:units]), _sigmoid(z[units:2 * units]), np.tanh(z[2 * units:3 * units]), \
            _sigmoid(z[3 * units:])
        c = f * c + i * g
        h = o * np.tanh(c)
        outputs.append(h)
    return c, h, np.array(outputs).reshape(-1, units)


def _layer_norm(x, gamma, beta, eps=1e-5):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * gamma + beta


def _numpy_ln_step(x, h, c, weights, forget_bias=1.0):
    kernel, recurrent, gate_gamma, gate_beta, cell_gamma, cell_beta = weights
    units = h.shape[-1]
    z = (x @ kernel + h @ recurrent).reshape(-1, 4, units)
    z = _layer_norm(z, gate_gamma, gate_beta)
    i, f, g, o = _sigmoid(z[:, 0]), _sigmoid(z[:, 1] + forget_bias), np.tanh(z[:, 2]), _sigmoid(z[:, 3])
    c = _layer_norm(c * f + g * i, cell_gamma, cell_beta)
    return np.tanh(c) * o, c


VARIANTS = {  # paper name -> (kwargs, width with D = units = 8)
    "LSTM": (dict(units=UNITS), 2 * UNITS),
    "LSTM-M": (dict(units=UNITS, use_input_sum=True), 3 * UNITS),
    "LSTM-M-O": (dict(units=UNITS, use_input_sum=True, use_output_sum=True), 4 * UNITS),
    "LSTM-M-O-LN": (dict(units=UNITS, use_input_sum=True, use_output_sum=True, layer_norm=True,
                         recurrent_dropout=0.2), 4 * UNITS),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_lstm_variants(name):
    kwargs, width = VARIANTS[name]
    frames, num_frames = _batch()
    layer, out = run_layer_test(LSTMPooling, kwargs, (frames, num_frames), (4, width))
    assert layer.output_dim(D) == width
    assert_padding_invariant(layer, frames, num_frames)
    np.testing.assert_array_equal(out[3], 0.0)  # 0-frame video


@pytest.mark.parametrize("use_cudnn", ["auto", False])  # Keras' LSTM loop / the hoisted loop
def test_lstm_m_o_matches_numpy_last_valid_state(use_cudnn):
    frames, num_frames = _batch(width=12)  # D = 12 != d = 8: output 2d + D + d = 36
    layer = LSTMPooling(units=UNITS, use_input_sum=True, use_output_sum=True, use_cudnn=use_cudnn)
    out = np.asarray(layer(frames, num_frames))
    assert out.shape == (4, 36) and layer.output_dim(12) == 36
    kernel, recurrent, bias = [np.asarray(w, np.float64) for w in layer.rnns[0].weights]
    for b, n in enumerate(num_frames):
        c, h, outputs = _numpy_lstm(frames[b, :n].astype(np.float64), kernel, recurrent, bias)
        expected = np.concatenate([c, h, frames[b, :n].sum(0), outputs.sum(0)]) if n else np.zeros(36)
        np.testing.assert_allclose(out[b], expected, atol=1e-5)
    compiled = tf.function(lambda x, n: layer(x, n, training=False), jit_compile=True)
    np.testing.assert_allclose(compiled(tf.constant(frames), tf.constant(num_frames)), out, atol=1e-5)


def test_lstm_two_layers_and_l2_sums():
    frames, num_frames = _batch(width=12)
    top = LSTMPooling(units=UNITS, num_layers=2, use_input_sum=True, l2_normalize_sums=True)
    out = np.asarray(top(frames, num_frames))
    assert out.shape == (4, 2 * UNITS + 12)
    norms = np.linalg.norm(out[:, 2 * UNITS:], axis=1)
    np.testing.assert_allclose(norms[:3], 1.0, atol=1e-5)
    assert norms[3] == 0.0
    # Top layer states = a numpy 2-layer LSTM's second layer.
    w1 = [np.asarray(w, np.float64) for w in top.rnns[0].weights]
    w2 = [np.asarray(w, np.float64) for w in top.rnns[1].weights]
    for b, n in enumerate(num_frames[:3]):
        _, _, seq = _numpy_lstm(frames[b, :n].astype(np.float64), *w1)
        c, h, _ = _numpy_lstm(seq, *w2)
        np.testing.assert_allclose(out[b, :2 * UNITS], np.concatenate([c, h]), atol=1e-5)

    everything, width = run_layer_test(LSTMPooling, dict(units=UNITS, num_layers=2, all_layer_states=True),
                                       (frames, num_frames), (4, 4 * UNITS))[0], 4 * UNITS
    assert everything.output_dim(12) == width
    assert_padding_invariant(everything, frames, num_frames)


def _keras_loop(**kwargs):
    """LSTMPooling running its `keras.layers.LSTM` layers with Keras' generic loop (no cuDNN, not hoisted)."""
    layer = LSTMPooling(use_cudnn="auto", **kwargs)
    for rnn in layer.rnns:
        rnn.use_cudnn = False
    return layer


def _outputs_and_gradients(layer, frames, num_frames, training, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def run(x, n):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = tf.cast(layer(x, n, training=training), tf.float32)
            loss = tf.reduce_sum(out * tf.sin(tf.range(out.shape[-1], dtype=tf.float32)))  # every column counts
        return out, tape.gradient(loss, [x] + layer.trainable_variables)
    out, grads = run(tf.constant(frames), tf.constant(num_frames))
    return np.asarray(out), [np.asarray(g) for g in grads]


@pytest.mark.parametrize("training,jit_compile", [(False, False), (True, True)])
def test_hoisted_lstm_matches_keras_loop(training, jit_compile):
    """use_cudnn=False (the input projection out of the time loop) == Keras' LSTM loop with the same weights:
    outputs and gradients (frames and weights), 2 layers, both sums, garbage padding, 0 to T frames."""
    frames, _ = _batch(batch=4, steps=9, width=12)
    frames = np.concatenate([frames, frames[:2]])
    num_frames = np.array([9, 3, 1, 0, 5, 8], np.int32)
    frames[np.arange(9)[None, :] >= num_frames[:, None]] = 7.0  # padding the mask must hide
    kwargs = dict(units=UNITS, num_layers=2, use_input_sum=True, use_output_sum=True, all_layer_states=True)
    hoisted, reference = LSTMPooling(use_cudnn=False, **kwargs), _keras_loop(**kwargs)
    hoisted(frames, num_frames)
    reference(frames, num_frames)
    reference.set_weights(hoisted.get_weights())
    out, grads = _outputs_and_gradients(hoisted, frames, num_frames, training, jit_compile)
    expected_out, expected_grads = _outputs_and_gradients(reference, frames, num_frames, training, jit_compile)
    np.testing.assert_allclose(out, expected_out, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)
    for grad, expected in zip(grads, expected_grads):
        np.testing.assert_allclose(grad, expected, atol=1e-5, rtol=1e-5)


def test_hoisted_lstm_weights_saving_dropout_and_xla():
    """Same weight paths and shapes as Keras' LSTM (checkpoints load), get_config / .keras round trips, a training
    step under jit_compile=True with dropout, and dropout only at training time (never in a 0-frame video)."""
    frames, num_frames = _batch(width=12)
    kwargs = dict(units=UNITS, num_layers=2, use_input_sum=True, use_output_sum=True)
    hoisted, reference = LSTMPooling(use_cudnn=False, name="pool", **kwargs), _keras_loop(name="pool", **kwargs)
    hoisted(frames, num_frames)
    reference(frames, num_frames)
    paths = [(w.path, tuple(w.shape)) for w in hoisted.weights]
    assert paths == [(w.path, tuple(w.shape)) for w in reference.weights]
    assert paths == [(f"pool/lstm_{k}/lstm_cell/{name}", shape) for k, width in ((0, 12), (1, UNITS))
                     for name, shape in (("kernel", (width, 4 * UNITS)), ("recurrent_kernel", (UNITS, 4 * UNITS)),
                                         ("bias", (4 * UNITS,)))]

    dropout = dict(kwargs, use_cudnn=False, dropout=0.3, recurrent_dropout=0.3, seed=2)
    layer, out = run_layer_test(LSTMPooling, dropout, (frames, num_frames), (4, 3 * UNITS + 12))
    assert_padding_invariant(layer, frames, num_frames)
    train = np.asarray(layer(frames, num_frames, training=True))
    assert not np.allclose(train[:3], out[:3]) and np.all(train[3] == 0.0)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_hoisted_lstm_mixed_precision(policy):
    frames, num_frames = _batch()
    kwargs = dict(units=UNITS, use_input_sum=True, use_output_sum=True, dtype=policy)
    hoisted, reference = LSTMPooling(use_cudnn=False, **kwargs), _keras_loop(**kwargs)
    out = hoisted(frames, num_frames)
    reference(frames, num_frames)
    reference.set_weights(hoisted.get_weights())
    assert out.dtype == policy.split("_")[1] and all(w.dtype == "float32" for w in hoisted.weights)
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(reference(frames, num_frames), np.float32),
                               atol=2e-2)
    _, grads = _outputs_and_gradients(hoisted, frames, num_frames, True, True)
    assert all(np.all(np.isfinite(g.astype(np.float32))) for g in grads)


def test_layer_norm_cell_matches_numpy_step():
    rng = np.random.default_rng(3)
    cell = LayerNormLSTMCell(UNITS)
    x = rng.normal(size=(3, D)).astype(np.float32)
    h0, c0 = [rng.normal(size=(3, UNITS)).astype(np.float32) for _ in range(2)]
    cell.build((None, D))
    for w in (cell.gate_gamma, cell.gate_beta, cell.cell_gamma, cell.cell_beta):  # non-trivial LN parameters
        w.assign(rng.normal(size=w.shape).astype(np.float32))
    h, (h_state, c) = cell(x, [h0, c0])
    weights = [np.asarray(w, np.float64) for w in (cell.kernel, cell.recurrent_kernel, cell.gate_gamma,
                                                   cell.gate_beta, cell.cell_gamma, cell.cell_beta)]
    expected_h, expected_c = _numpy_ln_step(x.astype(np.float64), h0, c0, weights)
    np.testing.assert_allclose(h, expected_h, atol=1e-5)
    np.testing.assert_allclose(h_state, expected_h, atol=1e-5)
    np.testing.assert_allclose(c, expected_c, atol=1e-5)
    # The gate pre-activations are normalised: scaling the kernels leaves the step (almost) unchanged.
    cell.kernel.assign(cell.kernel * 10.0)
    cell.recurrent_kernel.assign(cell.recurrent_kernel * 10.0)
    np.testing.assert_allclose(cell(x, [h0, c0])[0], expected_h, atol=1e-4)


def test_layer_norm_lstm_pooling_matches_numpy_and_dropout_only_in_training():
    frames, num_frames = _batch()
    layer = LSTMPooling(units=UNITS, use_output_sum=True, layer_norm=True, recurrent_dropout=0.2, seed=1)
    out = np.asarray(layer(frames, num_frames, training=False))
    cell = layer.rnns[0].cell
    weights = [np.asarray(w, np.float64) for w in (cell.kernel, cell.recurrent_kernel, cell.gate_gamma,
                                                   cell.gate_beta, cell.cell_gamma, cell.cell_beta)]
    for b, n in enumerate(num_frames[:3]):
        h, c, total = np.zeros((1, UNITS)), np.zeros((1, UNITS)), np.zeros(UNITS)
        for t in range(n):
            h, c = _numpy_ln_step(frames[b, t:t + 1].astype(np.float64), h, c, weights)
            total += h[0]
        np.testing.assert_allclose(out[b], np.concatenate([c[0], h[0], total]), atol=1e-5)
    train = np.asarray(layer(frames, num_frames, training=True))
    assert not np.allclose(train[:3], out[:3]) and np.all(train[3] == 0.0)
    no_dropout = LSTMPooling(units=UNITS, layer_norm=True)
    np.testing.assert_allclose(no_dropout(frames, num_frames, training=True),
                               no_dropout(frames, num_frames, training=False), atol=1e-6)


@pytest.mark.skipif(not tf.config.list_logical_devices("GPU"), reason="needs a GPU (cuDNN)")
def test_lstm_cudnn_matches_generic_kernel_with_zero_frame_video():
    """cuDNN takes right-padded masks only and rejects all-masked rows: LSTMPooling must still give the same
    last-valid states as the generic kernel, and zeros for a 0-frame video."""
    frames, num_frames = _batch()
    cudnn = LSTMPooling(units=UNITS, use_input_sum=True, use_output_sum=True, use_cudnn=True)
    generic = LSTMPooling(units=UNITS, use_input_sum=True, use_output_sum=True, use_cudnn=False)
    out = np.asarray(cudnn(frames, num_frames))
    generic(frames, num_frames)
    generic.set_weights(cudnn.get_weights())
    np.testing.assert_allclose(out, generic(frames, num_frames), atol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)
