"""Layer-normalised LSTM cell (Ba et al. 2016) for LSTM-M-O-LN, paper section 2.2.1 (Eq. 1-6)."""

import keras
from keras import ops


def _layer_norm(x, gamma, beta, epsilon):
    """Normalise over the last axis in float32, then scale and shift; returns x's dtype."""
    x32 = ops.cast(x, "float32")
    mean = ops.mean(x32, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(x32 - mean), axis=-1, keepdims=True)
    normalised = (x32 - mean) * ops.rsqrt(variance + epsilon)
    return ops.cast(normalised * ops.cast(gamma, "float32") + ops.cast(beta, "float32"), x.dtype)


@keras.saving.register_keras_serializable(package="yt8m_tf")
class LayerNormLSTMCell(keras.layers.Layer):
    """One step of Eq. 1-6 with each gate's pre-activation and the cell state layer-normalised.

    The cell of `tf.contrib.rnn.LayerNormBasicLSTMCell`, which the original code used:
        z_k  = LN_k(I_t U^k + s_{t-1} W^k)      k in {i, f, g, o}, each normalised separately, no bias
                                                  (the LN shift beta_k plays the role of b^k)
        i_t = sigma(z_i) (1), f_t = sigma(z_f + forget_bias) (2), o_t = sigma(z_o) (3), g_t = tanh(z_g) (4)
        c_t = LN_c(c_{t-1} o f_t + g_t o i_t)   (5)  (the normalised c_t is also the carried state)
        s_t = tanh(c_t) o o_t                   (6)
    LN gains start at 1 and shifts at 0 (contrib `norm_gain=1.0, norm_shift=0.0`); statistics in float32.

    Recurrent dropout "without memory loss" (Semeniuta et al. 2016), as in the contrib cell, multiplies g_t by a
    dropout mask. A Keras RNN cell cannot draw fresh random numbers per step portably, so the caller draws the
    per-step masks and appends them to the inputs: with `candidate_mask_in_inputs=True` the last `units` input
    columns are the (already 1/keep-scaled) mask for g_t. `LSTMPooling` does this.

    Args:
        units: int, cell size d.
        forget_bias: float, added to the forget pre-activation (contrib default 1.0).
        epsilon: float, LN variance epsilon.
        candidate_mask_in_inputs: bool, see above.

    Input: (B, D) frame (plus `units` mask columns), states [s_{t-1}, c_{t-1}] each (B, units).
    Output: s_t (B, units), states [s_t, c_t] (the Keras LSTMCell order, h then c).
    """

    def __init__(self, units, forget_bias=1.0, epsilon=1e-5, candidate_mask_in_inputs=False, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.forget_bias = forget_bias
        self.epsilon = epsilon
        self.candidate_mask_in_inputs = candidate_mask_in_inputs
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        input_dim = input_shape[-1] - (self.units if self.candidate_mask_in_inputs else 0)
        self.kernel = self.add_weight(name="kernel", shape=(input_dim, 4 * self.units),
                                      initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(self.units, 4 * self.units),
                                                initializer="orthogonal")
        self.gate_gamma = self.add_weight(name="gate_gamma", shape=(4, self.units), initializer="ones")
        self.gate_beta = self.add_weight(name="gate_beta", shape=(4, self.units), initializer="zeros")
        self.cell_gamma = self.add_weight(name="cell_gamma", shape=(self.units,), initializer="ones")
        self.cell_beta = self.add_weight(name="cell_beta", shape=(self.units,), initializer="zeros")

    def call(self, inputs, states, training=None):
        h_prev, c_prev = states[0], states[1]
        keep = None
        if self.candidate_mask_in_inputs:
            inputs, keep = inputs[:, :-self.units], inputs[:, -self.units:]
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel)
        z = _layer_norm(ops.reshape(z, (-1, 4, self.units)), self.gate_gamma, self.gate_beta, self.epsilon)
        z_i, z_f, z_g, z_o = z[:, 0], z[:, 1], z[:, 2], z[:, 3]
        i = ops.sigmoid(z_i)
        f = ops.sigmoid(z_f + self.forget_bias)
        o = ops.sigmoid(z_o)
        g = ops.tanh(z_g)
        if keep is not None:
            g = g * keep
        c = _layer_norm(c_prev * f + g * i, self.cell_gamma, self.cell_beta, self.epsilon)
        h = ops.tanh(c) * o
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units, "forget_bias": self.forget_bias, "epsilon": self.epsilon,
                       "candidate_mask_in_inputs": self.candidate_mask_in_inputs})
        return config
