"""Context Gating (Miech et al. 2017), the SE Context Gating of NeXtVLAD (Lin et al. 2018) and Model Garden's form.

All re-weight each entry of a vector by a sigmoid gate computed from the whole vector, so that the gate of one
feature (or one class) can depend on the others. They are used after the hidden projection of the WILLOW and
NeXtVLAD poolings and, for WILLOW, on the MoE's output probabilities (`MoE(prob_gating=True)`); Model Garden's
gates the DBoF cluster activations of each frame and the MoE's input and output.
"""

import math

import keras
from keras import ops

from yt8m_tf.pooling.utils import SLIM_BN


@keras.saving.register_keras_serializable(package="yt8m_tf")
class ContextGating(keras.layers.Layer):
    """y = x * sigmoid(BN(x W)) (Miech et al. 2017, section "Context Gating": Y = sigma(W X + b) o X, where
    batch normalisation takes the place of the bias b, as in their code).

    W is (d, d), initialised N(0, 1/d) as the original (`gating_weights`, `gating_prob_weights`). The WILLOW
    code applied it after the hidden projection of every clustering pooling (`--gating`) and to the MoE's output
    probabilities (`--moe_prob_gating`, where x are class probabilities and the gate models label correlations).

    Args:
        add_batch_norm: bool, batch norm of x W (slim defaults: momentum 0.999, epsilon 1e-3); False adds a bias
            instead (initialised 0; the original's bias branch had a shape bug and was never used).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: (batch, d). Output shape: (batch, d), the input dtype.
    """

    def __init__(self, add_batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.add_batch_norm = add_batch_norm
        self.batch_norm = (keras.layers.BatchNormalization(dtype=self.dtype_policy, name="gating_bn", **SLIM_BN)
                           if add_batch_norm else None)

    def build(self, input_shape):
        width = input_shape[-1]
        self.gating_weights = self.add_weight(
            name="gating_weights", shape=(width, width),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(width)))
        if self.batch_norm is not None:
            self.batch_norm.build((None, width))
        else:
            self.gating_biases = self.add_weight(name="gating_biases", shape=(width,), initializer="zeros")

    def call(self, x, training=None):
        gates = ops.matmul(x, ops.cast(self.gating_weights, x.dtype))
        if self.batch_norm is not None:
            gates = self.batch_norm(gates, training=training)
        else:
            gates = gates + ops.cast(self.gating_biases, x.dtype)
        return x * ops.cast(ops.sigmoid(gates), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"add_batch_norm": self.add_batch_norm})
        return config


@keras.saving.register_keras_serializable(package="yt8m_tf")
class SEContextGating(keras.layers.Layer):
    """y = x * sigmoid(ReLU(BN(x W1)) W2): the squeeze-and-excitation Context Gating of NeXtVLAD (Lin et al. 2018,
    section 3.3, Fig. 4), 2 d^2 / r weights (Eq. 10) instead of Context Gating's d^2.

    W1 (d, d/r) and W2 (d/r, d) have no bias and the He (variance scaling, fan in) initialisation of the original
    (`slim.variance_scaling_initializer`); the batch norm between them uses slim's defaults.

    Args:
        reduction: int r, the bottleneck is d // r wide (flag `gating_reduction`; the paper used 8 or 16).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: (batch, d). Output shape: (batch, d).
    """

    def __init__(self, reduction=8, **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.batch_norm = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="gating_bn", **SLIM_BN)

    def build(self, input_shape):
        width = input_shape[-1]
        bottleneck = width // self.reduction
        if bottleneck < 1:
            raise ValueError(f"SEContextGating: width {width} // reduction {self.reduction} is 0")
        self.squeeze_weights = self.add_weight(name="gating_weights_1", shape=(width, bottleneck),
                                               initializer="he_normal")
        self.excite_weights = self.add_weight(name="gating_weights_2", shape=(bottleneck, width),
                                              initializer="he_normal")
        self.batch_norm.build((None, bottleneck))

    def call(self, x, training=None):
        gates = ops.matmul(x, ops.cast(self.squeeze_weights, x.dtype))
        gates = ops.relu(self.batch_norm(gates, training=training))
        gates = ops.sigmoid(ops.matmul(gates, ops.cast(self.excite_weights, x.dtype)))
        return x * gates

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config


@keras.saving.register_keras_serializable(package="yt8m_tf")
class GardenContextGate(keras.layers.Layer):
    """Model Garden's Context Gating (tensorflow/models official/projects/yt8m `ContextGate`, the TF2 port's):
    y = x * BN(sigmoid(z W + b)), with z = x, or z = BN(relu6(x W1 + b1)) through a bottleneck of `bottleneck_size`.

    It differs from WILLOW's `ContextGating` (x * sigmoid(BN(x W))): the gate has a bias, the batch norm comes
    after the sigmoid (so a gate may leave [0, 1]), and an optional squeeze-and-excitation bottleneck replaces the
    (d, d) kernel by (d, n) and (n, d). Dense kernels are Glorot-uniform, biases zero, no L2; batch norms use
    Keras' defaults (momentum 0.99, epsilon 1e-3), as Model Garden's.

    Args:
        bottleneck_size: int n; 0 (or 1, as Model Garden) gates through one (d, d) layer. Flag
            `context_gate_cluster_bottleneck_size` for the DBoF cluster gate.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: x (..., d): (B, d) vectors or (B, T, d) frames, each frame gated by itself; `mask` (B, T) keeps padded
    frames out of the batch-norm statistics. Output: the shape and dtype of x.
    """

    def __init__(self, bottleneck_size=0, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.bottleneck_size = bottleneck_size
        if bottleneck_size >= 2:
            self.bottleneck = keras.layers.Dense(bottleneck_size, activation="relu6", dtype=self.dtype_policy,
                                                 name="bottleneck")
            self.bottleneck_norm = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="bottleneck_norm")
        else:
            self.bottleneck = self.bottleneck_norm = None
        self.gates_norm = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="gates_norm")

    def build(self, input_shape):
        width = input_shape[-1]
        gate_input = tuple(input_shape)
        if self.bottleneck is not None:
            self.bottleneck.build(gate_input)
            gate_input = gate_input[:-1] + (self.bottleneck_size,)
            self.bottleneck_norm.build(gate_input)
        self.gates = keras.layers.Dense(width, activation="sigmoid", dtype=self.dtype_policy, name="gates_dense")
        self.gates.build(gate_input)
        self.gates_norm.build(tuple(input_shape))

    def call(self, x, training=None, mask=None):
        z = x
        if self.bottleneck is not None:
            z = self.bottleneck_norm(self.bottleneck(z), training=training, mask=mask)
        return x * ops.cast(self.gates_norm(self.gates(z), training=training, mask=mask), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"bottleneck_size": self.bottleneck_size})
        return config
