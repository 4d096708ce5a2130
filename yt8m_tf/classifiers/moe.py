"""Mixture-of-experts classifier h (paper 2.3.2, Eq. 14-17): the starter `MoeModel` and its multi-layer variant."""

import keras
from keras import ops

from yt8m_tf.classifiers.regularizers import slim_l2
from yt8m_tf.pooling.context_gating import ContextGating, GardenContextGate


@keras.saving.register_keras_serializable(package="yt8m_tf")
class MoE(keras.layers.Layer):
    """Per-class softmax gate over E logistic experts plus a dummy expert that always predicts 0.

    One layer (`hidden_size=None`) is exactly the starter `MoeModel` (google/youtube-8m video_level_models.py),
    i.e. Eq. 14-15 with a dummy expert:

        e_k = sigmoid(w_e,k^T O_g + b_e,k)                   k = 1..E          (Eq. 14)
        g_k = softmax_k(w_g,k^T O_g)                         over k = 1..E+1   (Eq. 15, no gate bias)
        O_h[i] = sum_{k=1..E} g_k e_k                        (the (E+1)-th, dummy, expert predicts 0)

    The gate projection has no bias (`biases_initializer=None` in the starter) although Eq. 15 writes b_g; the
    expert projection has one. Both kernels carry the starter L2 penalty. Gate and expert logits are laid out
    class-major (`reshape(-1, E+1)` of a (B, C*(E+1)) tensor), so the Keras kernels load the starter's weights.

    With `hidden_size=d'` this is the paper's multi-layer MoE (Eq. 16-17):

        e_k = sigmoid(v_e,k^T (W_e O_g + b'_e) + b_e,k)                         (Eq. 16)
        g_k = softmax_k(v_g,k^T (W_g O_g + b'_g))                               (Eq. 17, no gate output bias)

    W_e, W_g are separate (d', d) dense layers with bias and L2. Eq. 16-17 and the original code
    (seilna/youtube-8m `Moe_2Layer_Model`, `activation_fn=None` on the `gates0` layer, `dim_gate=2048`) put no
    nonlinearity between the two projections, so `hidden_activation=None` is the default (the two layers then
    compose to a rank-d' linear map); any Keras activation name can be given instead. The original code gives
    only the gate path a hidden layer; `expert_hidden=False` reproduces that, the default `True` follows Eq. 16.

    Args:
        num_classes: int, number of classes C.
        num_mixtures: int, number of experts E, not counting the dummy expert. Default 2 (`--moe_num_mixtures`).
        l2_penalty: float, starter-code L2 factor on every kernel (see `regularizers.slim_l2`). Default 1e-8.
        hidden_size: int or None, d' of the multi-layer MoE (Eq. 16-17); None gives the one-layer MoE.
        expert_hidden: bool, with `hidden_size`, whether the expert path also gets its hidden layer W_e.
        hidden_activation: str or None, activation of the hidden layer(s). Default None (linear, Eq. 16-17).
        expert_bias_initializer_value: float, initial value of every expert's logit bias b_e,k. 0.0 (default) is
            the starter code, which starts every class near probability E / (2 (E + 1)) (1/3 for E = 2): with
            3862 rare classes the first steps then only push all scores down and the starter MoE under-trains on
            small data (docs/QUALITY.md). log(1/1000) starts each class near E / (E + 1) / 1000.
        prob_gating: bool, Context Gating of the output probabilities, O_h * sigmoid(BN(O_h W)) with W (C, C)
            (WILLOW's `--moe_prob_gating`, Miech et al. 2017 section 4: the gate lets classes re-weight each
            other; C^2 more weights, 14.9M for 3862 classes). Computed in float32; W carries no L2 penalty, as
            the original.
        input_context_gate: bool, Model Garden's `use_input_context_gate`: `GardenContextGate` on the input x
            (d^2 + 3d more trainable weights: kernel, bias, batch-norm gamma and beta).
        output_context_gate: bool, Model Garden's `use_output_context_gate`: `GardenContextGate` on the output
            probabilities (C^2 + 3C more trainable weights), in float32. Its batch norm follows the sigmoid, so an output
            may leave [0, 1] (the cross-entropy clips it to [0, 1], as Model Garden's Keras loss clips).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: (batch, d) float.
    Output shape: (batch, num_classes) float32 probabilities in [0, 1) (gates and experts run in float32; see
    `output_context_gate`).
    """

    def __init__(self, num_classes, num_mixtures=2, l2_penalty=1e-8, hidden_size=None, expert_hidden=True,
                 hidden_activation=None, expert_bias_initializer_value=0.0, prob_gating=False,
                 input_context_gate=False, output_context_gate=False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_mixtures = num_mixtures
        self.l2_penalty = l2_penalty
        self.hidden_size = hidden_size
        self.expert_hidden = expert_hidden
        self.hidden_activation = hidden_activation
        self.expert_bias_initializer_value = expert_bias_initializer_value
        self.prob_gating = prob_gating
        self.input_context_gate = input_context_gate
        self.output_context_gate = output_context_gate

        def hidden(name):
            return keras.layers.Dense(hidden_size, activation=hidden_activation,
                                      kernel_regularizer=slim_l2(l2_penalty), dtype=self.dtype_policy, name=name)

        self.gate_hidden = hidden("gate_hidden") if hidden_size else None
        self.expert_hidden_layer = hidden("expert_hidden") if hidden_size and expert_hidden else None
        self.gates = keras.layers.Dense(num_classes * (num_mixtures + 1), use_bias=False,
                                        kernel_regularizer=slim_l2(l2_penalty), dtype=self.dtype_policy, name="gates")
        self.experts = keras.layers.Dense(
            num_classes * num_mixtures, kernel_regularizer=slim_l2(l2_penalty),
            bias_initializer=keras.initializers.Constant(expert_bias_initializer_value), dtype=self.dtype_policy,
            name="experts")
        self.prob_gate = ContextGating(dtype="float32", name="prob_gating") if prob_gating else None
        self.input_gate = (GardenContextGate(dtype=self.dtype_policy, name="input_context_gate")
                           if input_context_gate else None)
        self.output_gate = (GardenContextGate(dtype="float32", name="output_context_gate")
                            if output_context_gate else None)

    def build(self, input_shape):
        gate_shape = expert_shape = input_shape
        if self.input_gate is not None:
            self.input_gate.build(input_shape)
        if self.gate_hidden is not None:
            self.gate_hidden.build(input_shape)
            gate_shape = self.gate_hidden.compute_output_shape(input_shape)
        if self.expert_hidden_layer is not None:
            self.expert_hidden_layer.build(input_shape)
            expert_shape = self.expert_hidden_layer.compute_output_shape(input_shape)
        self.gates.build(gate_shape)
        self.experts.build(expert_shape)
        if self.prob_gate is not None:
            self.prob_gate.build((None, self.num_classes))
        if self.output_gate is not None:
            self.output_gate.build((None, self.num_classes))

    def call(self, x, training=None):
        if self.input_gate is not None:
            x = self.input_gate(x, training=training)
        gate_input = self.gate_hidden(x) if self.gate_hidden is not None else x
        expert_input = self.expert_hidden_layer(x) if self.expert_hidden_layer is not None else x
        gate_logits = ops.reshape(ops.cast(self.gates(gate_input), "float32"),
                                  (-1, self.num_classes, self.num_mixtures + 1))
        expert_logits = ops.reshape(ops.cast(self.experts(expert_input), "float32"),
                                    (-1, self.num_classes, self.num_mixtures))
        gating = ops.softmax(gate_logits, axis=-1)[..., :self.num_mixtures]
        probabilities = ops.sum(gating * ops.sigmoid(expert_logits), axis=-1)
        if self.prob_gate is not None:
            probabilities = self.prob_gate(probabilities, training=training)
        if self.output_gate is not None:
            probabilities = self.output_gate(probabilities, training=training)
        return probabilities

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "num_mixtures": self.num_mixtures,
            "l2_penalty": self.l2_penalty,
            "hidden_size": self.hidden_size,
            "expert_hidden": self.expert_hidden,
            "hidden_activation": self.hidden_activation,
            "expert_bias_initializer_value": self.expert_bias_initializer_value,
            "prob_gating": self.prob_gating,
            "input_context_gate": self.input_context_gate,
            "output_context_gate": self.output_context_gate,
        })
        return config
