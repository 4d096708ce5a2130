"""GRU and bidirectional GRU / LSTM poolings (WILLOW 2017, the 2018 winners) against numpy recurrences."""

import numpy as np
import pytest

from tests import test_pooling_vlad
from tests.layer_testing import assert_padding_invariant, run_layer_test
from tests.test_pooling_lstm import _numpy_lstm
from tests.test_pooling_vlad import _sigmoid
from yt8m_tf.pooling import LSTMPooling, RecurrentPooling
from yt8m_tf.pooling.frame_sampling import sample_sequence_input

D, T, UNITS = 5, 6, 6


def _batch(seed=0):
    return test_pooling_vlad._batch(seed, steps=T, width=D)


def _numpy_gru(xs, cell):
    """Keras GRU (reset_after=True, gate order z, r, h) over xs -> (outputs (n, U), final h)."""
    kernel, recurrent, bias = (np.asarray(w) for w in (cell.kernel, cell.recurrent_kernel, cell.bias))
    units = recurrent.shape[0]
    h, outputs = np.zeros(units), []
    for x in xs:
        xz, xr, xh = np.split(x @ kernel + bias[0], 3)
        hz, hr, hh = np.split(h @ recurrent + bias[1], 3)
        z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
        h = z * h + (1 - z) * np.tanh(xh + r * hh)
        outputs.append(h)
    return np.array(outputs).reshape(-1, units), h


def _numpy_rnn(xs, keras_layer, cell):
    """(outputs, state) of one direction: GRU state h, LSTM state c."""
    if cell == "gru":
        return _numpy_gru(xs, keras_layer.cell)
    c, _, outputs = _numpy_lstm(xs, *(np.asarray(w) for w in (keras_layer.cell.kernel,
                                                             keras_layer.cell.recurrent_kernel, keras_layer.cell.bias)))
    return outputs, c


def _numpy_pooling(layer, frames, num_frames):
    pooled = []
    for b, n in enumerate(num_frames):
        if n == 0:
            pooled.append(np.zeros(layer.output_dim(D)))
            continue
        xs, states = frames[b, :n], []
        for rnn in layer.rnns:
            if hasattr(rnn, "forward_layer"):  # Bidirectional: backward outputs re-aligned with time
                forward, state_f = _numpy_rnn(xs, rnn.forward_layer, layer.cell)
                backward, state_b = _numpy_rnn(xs[::-1], rnn.backward_layer, layer.cell)
                xs, state = np.concatenate([forward, backward[::-1]], axis=1), np.concatenate([state_f, state_b])
            else:
                xs, state = _numpy_rnn(xs, rnn, layer.cell)
            states.append(state)
        state = np.concatenate(states) if layer.all_layer_states else states[-1]
        if layer.gating:  # x * sigmoid(x W + b)
            gate = layer.context_gating
            state = state * _sigmoid(state @ np.asarray(gate.gating_weights) + np.asarray(gate.gating_biases))
        pooled.append(state)
    return np.stack(pooled)


def test_bidirectional_gru_layer_contract():
    """One layer test (serialisation, .keras, XLA step) of the Bidirectional wrapper with every layer's state."""
    frames, num_frames = _batch()
    kwargs = dict(cell="gru", units=UNITS, num_layers=2, bidirectional=True, all_layer_states=True)
    layer, out = run_layer_test(RecurrentPooling, kwargs, (frames, num_frames), (4, 2 * UNITS))
    assert_padding_invariant(layer, frames, num_frames)
    np.testing.assert_allclose(out, _numpy_pooling(layer, frames, num_frames), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    dict(cell="gru", num_layers=2),  # WILLOW's GruModel: the final h of both layers (MultiRNNCell state)
    # The 2018 winners' GRUbidirect / Lstmbidirect: a bidirectional layer (units / 2 per direction), then one
    # layer of `units`; the top layer's state (GRU h, LSTM c).
    dict(cell="gru", num_layers=2, bidirectional=True, all_layer_states=False),
    dict(cell="lstm", num_layers=2, bidirectional=True, all_layer_states=False),
    # Their gated GRUbidirect: Context Gating (bias, no batch norm) of the top state.
    dict(cell="gru", num_layers=2, bidirectional=True, all_layer_states=False, gating=True),
])
def test_recurrent_pooling_matches_numpy(kwargs):
    frames, num_frames = _batch(seed=1)
    layer = RecurrentPooling(units=UNITS, **kwargs)
    out = np.asarray(layer(frames, num_frames))
    if layer.gating:
        test_pooling_vlad._randomize(layer.context_gating)
        out = np.asarray(layer(frames, num_frames))
    assert out.shape == (4, layer.output_dim(D))
    assert_padding_invariant(layer, frames, num_frames)
    if kwargs.get("bidirectional"):
        assert layer.rnns[0].forward_layer.units == UNITS // 2
    np.testing.assert_allclose(out, _numpy_pooling(layer, frames, num_frames), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls,kwargs", [
    (RecurrentPooling, dict(cell="gru", units=UNITS, num_layers=2)),  # (WILLOW's GRU: --gru_random_sequence)
    (LSTMPooling, dict(units=UNITS, num_layers=2, all_layer_states=True)),  # WILLOW's LstmModel
])
def test_lstm_random_sequence_reads_the_drawn_frames(cls, kwargs):
    """With sample_frames K (--lstm_random_sequence --iterations=K) the recurrence runs over the K drawn frames
    for min(num_frames, K) steps: at evaluation the numpy recurrence over the fixed draw, in training fresh draws."""
    frames, num_frames = _batch(seed=2)
    layer, out = run_layer_test(cls, dict(kwargs, sample_frames=4, seed=3), (frames, num_frames),
                                (4, 2 * UNITS * (2 if cls is LSTMPooling else 1)))
    assert_padding_invariant(layer, frames, num_frames)
    drawn, length = (np.asarray(v) for v in sample_sequence_input(frames, num_frames, 4))
    plain = cls(**kwargs)
    plain(drawn, length)
    plain.set_weights(layer.get_weights())
    np.testing.assert_allclose(out, np.asarray(plain(drawn, length)), rtol=1e-5, atol=1e-6)
    if cls is RecurrentPooling:
        np.testing.assert_allclose(out, _numpy_pooling(plain, drawn, length), rtol=1e-4, atol=1e-5)
    train = [np.asarray(layer(frames, num_frames, training=True)) for _ in range(2)]
    assert not np.allclose(train[0][0], train[1][0])  # a 6-frame video: 4 fresh draws each call
    np.testing.assert_array_equal(train[0][3], 0.0)
