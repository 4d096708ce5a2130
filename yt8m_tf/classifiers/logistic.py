"""Logistic classifier h: the starter code's `LogisticModel` (google/youtube-8m video_level_models.py)."""

import keras
from keras import ops

from yt8m_tf.classifiers.regularizers import slim_l2


@keras.saving.register_keras_serializable(package="yt8m_tf")
class Logistic(keras.layers.Layer):
    """One dense layer and a sigmoid per class: `O_h = sigmoid(W O_g + b)`.

    Same as the starter `LogisticModel`: `slim.fully_connected(x, C, activation_fn=sigmoid,
    weights_regularizer=slim.l2_regularizer(l2_penalty))` (Glorot-uniform kernel, bias, L2 on the kernel only).

    Args:
        num_classes: int, number of classes C.
        l2_penalty: float, starter-code L2 factor on the kernel (`l2_penalty * sum(w**2) / 2`, see
            `regularizers.slim_l2`). Default 1e-8.
        bias_initializer_value: float, initial value of every logit bias. 0.0 (default) is the starter code; a
            negative prior such as `log(p / (1 - p))` with p = 1/1000 starts rare classes near probability p.
        **kwargs: standard `keras.layers.Layer` arguments (name, dtype, ...).

    Input shape: (batch, d) float.
    Output shape: (batch, num_classes) float32 probabilities (the sigmoid runs in float32 under mixed precision).
    """

    def __init__(self, num_classes, l2_penalty=1e-8, bias_initializer_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.l2_penalty = l2_penalty
        self.bias_initializer_value = bias_initializer_value
        self.logits = keras.layers.Dense(
            num_classes,
            kernel_regularizer=slim_l2(l2_penalty),
            bias_initializer=keras.initializers.Constant(bias_initializer_value),
            dtype=self.dtype_policy,
            name="logits",
        )

    def build(self, input_shape):
        self.logits.build(input_shape)

    def call(self, x, training=None):
        return ops.sigmoid(ops.cast(self.logits(x), "float32"))

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "l2_penalty": self.l2_penalty,
            "bias_initializer_value": self.bias_initializer_value,
        })
        return config
