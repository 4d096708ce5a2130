"""Multi-layer perceptron classifier h (paper 2.3.3; Table 2 "3 Layer MLP-4096(-LN)")."""

import keras
from keras import ops

from yt8m_tf.classifiers.regularizers import slim_l2


@keras.saving.register_keras_serializable(package="yt8m_tf")
class MLP(keras.layers.Layer):
    """Stack of fully-connected layers, optionally layer-normalised, then a sigmoid per class.

    Each hidden layer follows the original code (seilna/youtube-8m video_level_models.py `NN`):

        layer_norm=True:  h <- activation(LayerNorm(W h))            dense without bias, LN with centre and scale
        layer_norm=False: h <- activation(W h + b)                   (the "MLP-4096" row; no original code)

    then `dropout` (0 = none; the original `NN` has none), and the output `O_h = sigmoid(W_o h)`, without an
    output bias as in `NN` (`use_output_bias=True` adds one, initialised to `output_bias_initializer_value`, e.g.
    log(1/1000) so that 3862 rare classes start near their prior). Every kernel carries the starter L2 penalty.
    `input_noise` adds Gaussian noise of that standard deviation to the input while training (a regulariser for
    small data sets; see docs/QUALITY.md). `features(x)` and `classify(h)` split the layer at its last hidden
    layer, for heads that reuse the hidden representation (`KnnMemory`).
    The original layer norm (`tf.contrib.layers.layer_norm`) used epsilon 1e-12; `layer_norm_epsilon`
    defaults to 1e-6, which is the same in practice on 4096-wide activations and safer in low precision.

    Args:
        num_classes: int, number of classes C.
        hidden_sizes: sequence of ints, widths of the hidden layers. Default (4096, 4096, 4096) (paper 3.2.2).
        layer_norm: bool, apply layer normalisation to each hidden layer (paper 2.3.3). Default False.
        activation: str, Keras activation of the hidden layers. Default "relu" (original `NN`).
        dropout: float, dropout rate after each hidden layer, training only. Default 0.0.
        l2_penalty: float, starter-code L2 factor on every kernel (see `regularizers.slim_l2`). Default 1e-8.
        layer_norm_epsilon: float, epsilon of the layer normalisations. Default 1e-6.
        use_output_bias: bool, give the output projection a bias. Default False (original `NN`).
        output_bias_initializer_value: float, initial value of that bias (a logit). Default 0.0.
        input_noise: float, standard deviation of the Gaussian noise added to the input, training only. Default 0.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: (batch, d) float.
    Output shape: (batch, num_classes) float32 probabilities (the sigmoid runs in float32).
    """

    def __init__(self, num_classes, hidden_sizes=(4096, 4096, 4096), layer_norm=False, activation="relu",
                 dropout=0.0, l2_penalty=1e-8, layer_norm_epsilon=1e-6, use_output_bias=False,
                 output_bias_initializer_value=0.0, input_noise=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.hidden_sizes = [int(size) for size in hidden_sizes]
        self.layer_norm = layer_norm
        self.activation = activation
        self.dropout = dropout
        self.l2_penalty = l2_penalty
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_output_bias = use_output_bias
        self.output_bias_initializer_value = output_bias_initializer_value
        self.input_noise = input_noise

        self.hidden_layers, self.norms = [], []
        for i, size in enumerate(self.hidden_sizes):
            self.hidden_layers.append(keras.layers.Dense(
                size, use_bias=not layer_norm, kernel_regularizer=slim_l2(l2_penalty), dtype=self.dtype_policy,
                name=f"hidden_{i}"))
            if layer_norm:
                self.norms.append(keras.layers.LayerNormalization(
                    epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name=f"layer_norm_{i}"))
        self.hidden_activation = keras.activations.get(activation)
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy) if dropout else None
        self.noise_layer = keras.layers.GaussianNoise(input_noise, dtype=self.dtype_policy) if input_noise else None
        self.logits = keras.layers.Dense(
            num_classes, use_bias=use_output_bias, kernel_regularizer=slim_l2(l2_penalty),
            bias_initializer=keras.initializers.Constant(output_bias_initializer_value), dtype=self.dtype_policy,
            name="logits")

    def build(self, input_shape):
        shape = input_shape
        for i, dense in enumerate(self.hidden_layers):
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            if self.layer_norm:
                self.norms[i].build(shape)
        self.logits.build(shape)

    @property
    def feature_size(self):
        """Width of `features(x)`: the last hidden layer (the input width when there is none)."""
        return self.hidden_sizes[-1] if self.hidden_sizes else None

    def call(self, x, training=None):
        return self.classify(self.features(x, training=training))

    def classify(self, h):
        """Probabilities from the last hidden layer's output."""
        return ops.sigmoid(ops.cast(self.logits(h), "float32"))

    def features(self, x, training=None):
        """The last hidden layer's output (after activation and, when training, dropout)."""
        h = x
        if self.noise_layer is not None:
            h = self.noise_layer(h, training=training)
        for i, dense in enumerate(self.hidden_layers):
            h = dense(h)
            if self.layer_norm:
                h = self.norms[i](h)
            h = self.hidden_activation(h)
            if self.dropout_layer is not None:
                h = self.dropout_layer(h, training=training)
        return h

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "hidden_sizes": self.hidden_sizes,
            "layer_norm": self.layer_norm,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2_penalty": self.l2_penalty,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "use_output_bias": self.use_output_bias,
            "output_bias_initializer_value": self.output_bias_initializer_value,
            "input_noise": self.input_noise,
        })
        return config
