"""Many-to-many classifier h (paper 2.3.1): an LSTM over the frames scored at every step, scores averaged."""

import keras
from keras import ops

from yt8m_tf.classifiers.regularizers import slim_l2
from yt8m_tf.masking import frame_mask, masked_mean


@keras.saving.register_keras_serializable(package="yt8m_tf")
class ManyToMany(keras.layers.Layer):
    """LSTM over the raw frames I, a sigmoid dense layer at every step, scores averaged over the valid steps.

    `O_h = (1 / n) sum_{t < n} sigmoid(W h_t + b)` with h_t the LSTM output at frame t and n = num_frames
    (paper 2.3.1, Eq. 13 first case). This head reads the frames, not the pooling output O_g, so it sets
    `takes_frames = True` and is called as `call(frames, num_frames, training=None)`.

    Follows seilna/youtube-8m frame_level_models.py `Many2ManyLstmModel` (one LSTM layer of `--lstm_cells=1152`,
    a per-step `fully_connected(..., activation_fn=sigmoid, weights_regularizer=l2(1e-8))`), with one fix: the
    original `tf.reduce_mean(scores, 1)` also averaged the padded steps (sigmoid of the bias there), which makes
    the output depend on the padding; here only the t < num_frames steps are averaged, so padded frames never
    change the output. A 0-frame video gives all-zero probabilities (no step to average). The LSTM itself is
    run with a mask of max(num_frames, 1) steps so that cuDNN never sees an empty sequence.

    Args:
        num_classes: int, number of classes C.
        units: int, LSTM width. Default 1152 (original `--lstm_cells`).
        l2_penalty: float, starter-code L2 factor on the per-step dense kernel. Default 1e-8.
        use_cudnn: "auto", True or False, passed to `keras.layers.LSTM`. Default "auto".
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shapes: frames (batch, T, D) float; num_frames (batch,) int, valid frames per video (mask t < n).
    Output shape: (batch, num_classes) float32 probabilities.
    """

    takes_frames = True

    def __init__(self, num_classes, units=1152, l2_penalty=1e-8, use_cudnn="auto", **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.units = units
        self.l2_penalty = l2_penalty
        self.use_cudnn = use_cudnn
        self.lstm = keras.layers.LSTM(units, return_sequences=True, use_cudnn=use_cudnn, dtype=self.dtype_policy,
                                      name="lstm")
        self.logits = keras.layers.Dense(num_classes, kernel_regularizer=slim_l2(l2_penalty), dtype=self.dtype_policy,
                                         name="logits")

    def build(self, frames_shape, num_frames_shape=None):
        self.lstm.build(frames_shape)
        self.logits.build(tuple(frames_shape[:-1]) + (self.units,))

    def call(self, frames, num_frames, training=None):
        max_frames = ops.shape(frames)[1]
        valid = frame_mask(num_frames, max_frames)
        lstm_mask = frame_mask(ops.maximum(num_frames, 1), max_frames, dtype="bool")
        outputs = self.lstm(frames, mask=lstm_mask, training=training)
        scores = ops.sigmoid(ops.cast(self.logits(outputs), "float32"))
        return masked_mean(scores, valid)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "units": self.units,
            "l2_penalty": self.l2_penalty,
            "use_cudnn": self.use_cudnn,
        })
        return config
