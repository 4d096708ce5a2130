"""LSTM pooling and its variants LSTM, LSTM-M, LSTM-M-O, LSTM-M-O-LN, paper section 2.2.1 (Eq. 1-6)."""

import keras
from keras import ops

from yt8m_tf.masking import frame_mask, masked_sum
from yt8m_tf.pooling.frame_sampling import sample_sequence_input
from yt8m_tf.pooling.layer_norm_lstm_cell import LayerNormLSTMCell
from yt8m_tf.pooling.utils import l2_normalize, valid_frames


@keras.saving.register_keras_serializable(package="yt8m_tf")
class LSTMPooling(keras.layers.Layer):
    """Run an LSTM (Eq. 1-6) over the valid frames and concatenate [c_T, s_T, M_l, O_l].

    - c_T, s_T: cell and hidden state after the last VALID frame T = num_frames (always present).
    - M_l = sum_{t<=T} I_t (`use_input_sum`): the sum of the input frames; it has the INPUT width D.
    - O_l = sum_{t<=T} s_t (`use_output_sum`): the sum of the LSTM outputs (hidden states of the top layer) over
      the valid steps. The paper's text writes "sum_t g_t" but calls it "the summation of the output of each time
      step"; the original code (`ContextMemoryModel`) sums the outputs s_t of `dynamic_rnn`, which is what is
      done here.
    The paper's variants: LSTM = neither sum (2d), LSTM-M = `use_input_sum` (2d + D), LSTM-M-O = both (3d + D),
    LSTM-M-O-LN = both and `layer_norm=True`. With the paper's d = D = 1152 these are the 2d / 3d / 4d outputs of
    the paper; when D != d, "3d" means 2d + D and "4d" 3d + D. `output_dim(D)` gives the width.

    `num_layers` stacks LSTMs (each layer reads the previous one's outputs). By default only the TOP layer's
    (c_T, s_T) are used, so the width does not depend on the depth. `all_layer_states=True` concatenates every
    layer's (c_T, s_T) instead, as the original `LstmModel` did (`MultiRNNCell(state_is_tuple=False)` state
    [c_1, s_1, c_2, s_2] with its default `lstm_layers=2`). The paper's LSTM-M-O (`ContextMemoryModel`) and the LN
    variants used one layer.

    The non-LN variants hold `keras.layers.LSTM` layers (their cells' kernel U, recurrent_kernel W and bias b are the
    weights). With `use_cudnn="auto"` those layers run: the cuDNN kernel on GPU, Keras' generic loop elsewhere. The
    cuDNN RNN op has no XLA kernel (Keras marks such an LSTM `supports_jit = False`, which only `Model.compile(
    jit_compile="auto")` reads), so a custom `tf.function(jit_compile=True)` loop on GPU must build this layer with
    `use_cudnn=False`. Then the layer runs its own loop (`ops.while_loop`, compiles under XLA) instead of Keras'
    generic one, which multiplies I_t by U inside the time loop: the first layer's input projections I_t U + b of
    all steps are one (B*T, D) x (D, 4d) product before the loop, which only adds s_{t-1} W and does the gates and
    the cell (Eq. 1-6, Keras' gate order i, f, g, o), all layers in the same step: 1.5x faster training steps
    under XLA on CPU, 0.5x without (TF's gradient of each step's read of the projections is a dense (T, B, 4d)
    tensor), hence not used for "auto" (bench/lstm_hoist.py). Its gradient needs the TF backend (JAX's while loop
    has no reverse-mode gradient).
    Keras' cuDNN path asserts that no row is fully masked, so every video runs at least one step (a 0-frame video
    reads its zeroed first frame) and the states of 0-frame videos are then replaced by zeros. The mask is built from
    num_frames (right padding), the only kind cuDNN accepts.

    Args:
        units: int, cell size d (paper and flag `lstm_cells`: 1152).
        num_layers: int, stacked LSTM layers (1 in the paper's results).
        use_input_sum: bool, append M_l (the "-M").
        use_output_sum: bool, append O_l (the "-O").
        layer_norm: bool, layer-normalised gates and cell (`LayerNormLSTMCell`, as contrib's
            `LayerNormBasicLSTMCell`) run by `keras.layers.RNN` (no cuDNN).
        dropout: float, fraction of input features dropped at training time (one mask per sequence, as Keras' LSTM
            `dropout`; keeps cuDNN). The original code had none.
        recurrent_dropout: float, fraction dropped at training time. With `layer_norm` it is the contrib cell's
            dropout of the candidate g_t (Eq. 4), fresh per step: the paper's "dropout rate=0.8" is the original
            code's `dropout_keep_prob=0.8` (LayerNormBasicLSTMCell argument), i.e. `recurrent_dropout=0.2`.
            Without `layer_norm` it is Keras' recurrent dropout on s_{t-1} (one mask per sequence), which disables
            cuDNN.
        l2_normalize_sums: bool, L2-normalise M_l and O_l (each on its own) before concatenating. Not in the paper;
            the original code did it (`tf.nn.l2_normalize` in `ContextMemoryModel`, `Lstm_average_concat`,
            `LayerNormLstmAveConcatModel`). Raw sums over up to 300 frames are 1e2-1e3 times larger than c_T, s_T.
            Default False (the paper's equations).
        all_layer_states: bool, see above.
        use_cudnn: "auto" or True: run `keras.layers.LSTM` (non-LN only); False: the layer's own loop (above).
        sample_frames: int K; > 0 runs over K frames drawn from each video instead of its frames in order (WILLOW's
            `--lstm_random_sequence` with `--iterations`, `frame_sampling.sample_sequence_input`). 0: off.
        seed: int or None, dropout and sampling seed.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int.
    Output: (B, output_dim(D)), the pieces in the order c_T, s_T (per layer if `all_layer_states`), M_l, O_l.
    Mask: padded frames never update the states or enter the sums; a 0-frame video gives all zeros.
    """

    def __init__(self, units=1152, num_layers=1, use_input_sum=False, use_output_sum=False, layer_norm=False,
                 dropout=0.0, recurrent_dropout=0.0, l2_normalize_sums=False, all_layer_states=False,
                 use_cudnn="auto", sample_frames=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.sample_frames = sample_frames
        self.num_layers = num_layers
        self.use_input_sum = use_input_sum
        self.use_output_sum = use_output_sum
        self.layer_norm = layer_norm
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.l2_normalize_sums = l2_normalize_sums
        self.all_layer_states = all_layer_states
        self.use_cudnn = use_cudnn
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.rnns = []
        for k in range(num_layers):
            if layer_norm:
                cell = LayerNormLSTMCell(units, candidate_mask_in_inputs=recurrent_dropout > 0,
                                         dtype=self.dtype_policy, name=f"ln_lstm_cell_{k}")
                rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True, dtype=self.dtype_policy,
                                       name=f"ln_lstm_{k}")
            else:
                rnn = keras.layers.LSTM(units, dropout=dropout, recurrent_dropout=recurrent_dropout,
                                        return_sequences=True, return_state=True, use_cudnn=use_cudnn, seed=seed,
                                        dtype=self.dtype_policy, name=f"lstm_{k}")
            self.rnns.append(rnn)

    def build(self, frames_shape):
        input_dim = frames_shape[-1]
        extra = self.units if (self.layer_norm and self.recurrent_dropout > 0) else 0
        for rnn in self.rnns:
            rnn.build((None, None, input_dim + extra))
            input_dim = self.units

    def _dropout(self, x, rate, per_step):
        """Keras-style inverted dropout of (B, T, D) x, one mask per sequence or one per step."""
        shape = ops.shape(x) if per_step else (ops.shape(x)[0], 1, ops.shape(x)[2])
        return x * keras.random.dropout(ops.ones(shape, dtype=x.dtype), rate, seed=self.seed_generator)

    def _hoisted_lstm(self, frames, mask, training):
        """The stacked LSTMs (Eq. 1-6) over the valid frames, I_t U + b of the first layer out of the time loop.

        Returns [(c_T, s_T) per layer] and O_l of the top layer (summed in float32). The same values as running the
        `keras.layers.LSTM` layers over `mask` (a masked step keeps the states): `dropout` masks each layer's input
        and `recurrent_dropout` its s_{t-1}, one mask per sequence each, as Keras' LSTM cell. A layer above the first
        reads the s_t of the layer below at the same step, so its input product stays in the loop.
        """
        dtype = frames.dtype
        batch, steps = ops.shape(frames)[0], ops.shape(frames)[1]

        def keep(rate):
            if not (training and 0.0 < rate < 1.0):
                return None
            return keras.random.dropout(ops.ones((batch, self.units), dtype), rate, seed=self.seed_generator)

        def masked(v, keep_mask):
            return v if keep_mask is None else v * keep_mask

        if training and 0.0 < self.dropout < 1.0:
            frames = self._dropout(frames, self.dropout, per_step=False)
        layers = []
        for k, rnn in enumerate(self.rnns):
            weights = [ops.cast(w, dtype) for w in (rnn.cell.kernel, rnn.cell.recurrent_kernel, rnn.cell.bias)]
            layers.append(weights + [keep(self.dropout) if k else None, keep(self.recurrent_dropout)])
        kernel, _, bias, _, _ = layers[0]
        projected = ops.moveaxis(ops.matmul(frames, kernel) + bias, 1, 0)  # (T, B, 4d): I_t U + b of every step
        valid = ops.expand_dims(ops.transpose(mask), -1)  # (T, B, 1)

        def body(t, states, total):
            m = ops.take(valid, t, axis=0)
            new_states = []
            for k, ((h, c), (kernel, recurrent, bias, input_keep, recurrent_keep)) in enumerate(zip(states, layers)):
                z = (ops.take(projected, t, axis=0) if k == 0
                     else ops.matmul(masked(new_states[-1][0], input_keep), kernel) + bias)
                z_i, z_f, z_g, z_o = ops.split(z + ops.matmul(masked(h, recurrent_keep), recurrent), 4, axis=-1)
                c_new = ops.sigmoid(z_f) * c + ops.sigmoid(z_i) * ops.tanh(z_g)  # Eq. 1, 2, 4, 5
                h_new = ops.sigmoid(z_o) * ops.tanh(c_new)  # Eq. 3, 6
                new_states.append((ops.where(m, h_new, h), ops.where(m, c_new, c)))
            top = new_states[-1][0]
            return t + 1, tuple(new_states), total + ops.cast(ops.where(m, top, ops.zeros_like(top)), "float32")

        zeros = ops.zeros((batch, self.units), dtype)
        _, states, total = ops.while_loop(  # maximum_iterations: TF's XLA gradient needs a bounded loop
            lambda t, *_: t < steps, body, (0, ((zeros, zeros),) * self.num_layers, ops.cast(zeros, "float32")),
            maximum_iterations=steps)
        return [(c, h) for h, c in states], ops.cast(total, dtype)

    def call(self, frames, num_frames, training=None):
        if self.sample_frames:
            frames, num_frames = sample_sequence_input(frames, num_frames, self.sample_frames, training,
                                                       seed=self.seed_generator)
        mask, frames = valid_frames(frames, num_frames)
        count = ops.cast(num_frames, "int32")
        run_mask = frame_mask(ops.maximum(count, 1), ops.shape(frames)[1], dtype="bool")
        has_frames = ops.expand_dims(count > 0, -1)

        if self.use_cudnn is False and not self.layer_norm:
            states, output_sum = self._hoisted_lstm(frames, mask, training)
        else:
            x = frames
            states = []
            for rnn in self.rnns:
                if self.layer_norm:
                    if training and self.dropout > 0:
                        x = self._dropout(x, self.dropout, per_step=False)
                    if self.recurrent_dropout > 0:
                        keep_shape = (ops.shape(x)[0], ops.shape(x)[1], self.units)
                        keep = ops.ones(keep_shape, dtype=x.dtype)
                        if training:
                            keep = self._dropout(keep, self.recurrent_dropout, per_step=True)
                        x = ops.concatenate([x, keep], axis=-1)
                x, h_last, c_last = rnn(x, mask=run_mask, training=training)
                states.append((c_last, h_last))
            output_sum = masked_sum(x, mask) if self.use_output_sum else None

        pieces = []
        for c_last, h_last in (states if self.all_layer_states else states[-1:]):
            pieces += [ops.where(has_frames, c_last, ops.zeros_like(c_last)),
                       ops.where(has_frames, h_last, ops.zeros_like(h_last))]
        normalise = l2_normalize if self.l2_normalize_sums else (lambda v: v)
        if self.use_input_sum:
            pieces.append(ops.cast(normalise(masked_sum(frames, mask)), pieces[0].dtype))
        if self.use_output_sum:
            pieces.append(normalise(output_sum))
        return ops.concatenate(pieces, axis=-1)

    def output_dim(self, input_dim):
        width = 2 * self.units * (self.num_layers if self.all_layer_states else 1)
        if self.use_input_sum:
            width += input_dim
        if self.use_output_sum:
            width += self.units
        return width

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "num_layers": self.num_layers,
            "use_input_sum": self.use_input_sum,
            "use_output_sum": self.use_output_sum,
            "layer_norm": self.layer_norm,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "l2_normalize_sums": self.l2_normalize_sums,
            "all_layer_states": self.all_layer_states,
            "use_cudnn": self.use_cudnn,
            "sample_frames": self.sample_frames,
            "seed": self.seed,
        })
        return config
