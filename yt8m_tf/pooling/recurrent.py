"""GRU and bidirectional GRU / LSTM poolings of the competition winners: WILLOW's `GruModel` (2017, 1st place;
Miech et al. 2017 section 5, "GRU (2 layers)") and the bidirectional models of the 2018 1st place (Skalic & Austin
2018, miha-skalic/youtube8mchallenge `GRUbidirect`, `Lstmbidirect`). The unidirectional LSTM is `LSTMPooling`."""

import keras
from keras import ops

from yt8m_tf.masking import frame_mask
from yt8m_tf.pooling.context_gating import ContextGating
from yt8m_tf.pooling.frame_sampling import sample_sequence_input
from yt8m_tf.pooling.utils import valid_frames

CELLS = ("gru", "lstm")


@keras.saving.register_keras_serializable(package="yt8m_tf")
class RecurrentPooling(keras.layers.Layer):
    """Stacked GRU or LSTM layers over the valid frames; the pooled vector is the final state.

    - `bidirectional=False`: `num_layers` layers of `units` (each reads the outputs of the one below).
    - `bidirectional=True`: the first layer is bidirectional with units // 2 per direction (their outputs
      concatenated, `units` wide), the `num_layers - 1` layers above it are unidirectional with `units`, as the
      2018 winners' `GRUbidirect` / `Lstmbidirect` (one bidirectional layer, then one layer).
    - `all_layer_states=True` concatenates the final state of every layer (WILLOW's `GruModel`: TF1's
      `MultiRNNCell(state_is_tuple=False)` state, num_layers * units wide; a bidirectional first layer gives
      both directions' states); False keeps the top layer's (`units`).
    A layer's "state" is h for a GRU and the cell state c for an LSTM (the 2018 code classified `state[-1].c`).

    Keras' cells: GRU with `reset_after=True` (the cuDNN-compatible form; TF1's `GRUCell` applied the reset gate
    before the recurrent product) and LSTM with its forget-gate bias initialised to 1 (TF1's `BasicLSTMCell`
    added `forget_bias=1.0`). With `use_cudnn="auto"` they run cuDNN on a GPU; a `jit_compile=True` step must
    use `use_cudnn=False` (cuDNN has no XLA kernel). As in `LSTMPooling`, every video runs at least one step (the
    cuDNN kernel rejects empty rows) and 0-frame videos get zero states.

    Args:
        cell: "gru" or "lstm".
        units: int, state width (flags `gru_cells`, `lstm_cells`).
        num_layers: int, layers in total, the bidirectional one included (flags `gru_layers`, `lstm_layers`).
        bidirectional: bool, see above.
        all_layer_states: bool, see above.
        use_cudnn: "auto", True or False, passed to the Keras layers.
        gating: bool, Context Gating of the pooled state, x * sigmoid(x W + b) (no batch norm: the 2018 winners'
            `GRUbidirect` with `--gating`; its bias started N(0, 1/d), here 0).
        sample_frames: int K; > 0 runs over K frames drawn from each video instead of its frames in order (WILLOW's
            `--lstm_random_sequence` with `--iterations`, `frame_sampling.sample_sequence_input`). 0: off.
        seed: int or None, seed of that sampling.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int. Output: (B, output_dim(D)).
    Mask: padded frames never update a state (the backward direction starts at each video's last valid frame);
    a 0-frame video gives zeros.
    """

    def __init__(self, cell="gru", units=1024, num_layers=2, bidirectional=False, all_layer_states=True,
                 use_cudnn="auto", gating=False, sample_frames=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if bidirectional and units % 2:
            raise ValueError(f"a bidirectional layer splits units={units} in two: pass an even number")
        self.cell = cell
        self.units = units
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.all_layer_states = all_layer_states
        self.use_cudnn = use_cudnn
        self.gating = gating
        self.context_gating = (ContextGating(add_batch_norm=False, dtype=self.dtype_policy, name="context_gating")
                               if gating else None)
        self.sample_frames = sample_frames
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if sample_frames else None
        self.rnns = []
        for k in range(num_layers):
            width = units // 2 if (bidirectional and k == 0) else units
            rnn = self._rnn(width, f"{cell}_{k}")
            if bidirectional and k == 0:
                rnn = keras.layers.Bidirectional(rnn, backward_layer=self._rnn(width, f"{cell}_{k}_backward",
                                                                              go_backwards=True),
                                                 dtype=self.dtype_policy, name=f"bidirectional_{cell}_{k}")
            self.rnns.append(rnn)

    def _rnn(self, width, name, go_backwards=False):
        layer = keras.layers.GRU if self.cell == "gru" else keras.layers.LSTM
        return layer(width, return_sequences=True, return_state=True, go_backwards=go_backwards,
                     use_cudnn=self.use_cudnn, dtype=self.dtype_policy, name=name)

    def build(self, frames_shape):
        width = frames_shape[-1]
        for rnn in self.rnns:
            rnn.build((None, None, width))
            width = self.units
        if self.context_gating is not None:
            self.context_gating.build((None, self.output_dim(frames_shape[-1])))

    def call(self, frames, num_frames, training=None):
        if self.sample_frames:
            frames, num_frames = sample_sequence_input(frames, num_frames, self.sample_frames, training,
                                                       seed=self.seed_generator)
        _, x = valid_frames(frames, num_frames)
        count = ops.cast(num_frames, "int32")
        run_mask = frame_mask(ops.maximum(count, 1), ops.shape(frames)[1], dtype="bool")
        states = []
        for rnn in self.rnns:
            x, *final = rnn(x, mask=run_mask, training=training)
            states.append(self._state(final, bidirectional=isinstance(rnn, keras.layers.Bidirectional)))
        pooled = ops.concatenate(states, axis=-1) if self.all_layer_states else states[-1]
        if self.context_gating is not None:
            pooled = self.context_gating(pooled, training=training)
        return ops.where(ops.expand_dims(count > 0, -1), pooled, ops.zeros_like(pooled))

    def _state(self, final, bidirectional):
        """The layer's state from the Keras return_state values: GRU [h] (per direction), LSTM [h, c] (per
        direction) -> h, or c for an LSTM; both directions concatenated."""
        per_direction = 1 if self.cell == "gru" else 2
        directions = [final[i * per_direction:(i + 1) * per_direction] for i in range(2 if bidirectional else 1)]
        return ops.concatenate([d[-1] for d in directions], axis=-1) if bidirectional else directions[0][-1]

    def output_dim(self, input_dim):
        return self.units * (self.num_layers if self.all_layer_states else 1)

    def get_config(self):
        config = super().get_config()
        config.update({
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "all_layer_states": self.all_layer_states,
            "use_cudnn": self.use_cudnn,
            "gating": self.gating,
            "sample_frames": self.sample_frames,
            "seed": self.seed,
        })
        return config
