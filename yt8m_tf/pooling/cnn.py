"""Temporal CNN pooling, paper section 2.2.2 (Eq. 7), after Kim (2014)'s text CNN."""

import keras
from keras import ops

from yt8m_tf.masking import frame_mask, masked_max
from yt8m_tf.pooling.utils import l2_normalize, valid_frames


@keras.saving.register_keras_serializable(package="yt8m_tf")
class TemporalCNNPooling(keras.layers.Layer):
    """o_c = ReLU(conv(I, w_conv, b_conv)) (Eq. 7), then max over time.

    The filter spans `kernel_size` (c_v = 5) frames and the whole feature width (c_h = D = 1152), stride 1, `filters`
    output channels (the paper's CNN-64 / CNN-256 / CNN-1024). That is a 1-D convolution over time, done here with
    `keras.layers.Conv1D(padding="valid")`.

    Valid output positions: a position t (window frames t .. t + kernel_size - 1) is valid when its whole window lies
    inside the video's valid frames, i.e. t <= num_frames - kernel_size, as the paper's o_c in R^{(T - c_v + 1) x d}.
    A video with 0 < num_frames < kernel_size gets exactly one position, t = 0, whose window is the video zero-padded
    to kernel_size frames (what the original code computed for such videos: its input was zero-padded to 300 frames).
    A 0-frame video gives zeros. Padded frames are zeroed before the convolution, so they never reach a valid window.

    Args:
        filters: int, output channels d (64, 256 or 1024 in the paper; flag `num_channels`, default 64).
        kernel_size: int, window height c_v (flag `kernel_height`, 5).
        l2_normalize: bool, L2-normalise the pooled vector. The paper has no normalisation; the original code
            (seilna/youtube-8m `CNN`) did it, so True reproduces the code. Default False.

    Input: `frames` (B, T, D) float (any T >= 1), `num_frames` (B,) int.
    Output: (B, filters); `output_dim(D) = filters`.
    Mask: only windows inside the valid frames are pooled (see above). The original code max-pooled over all
        300 - 4 positions, windows over zero padding included.
    """

    def __init__(self, filters=64, kernel_size=5, l2_normalize=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.l2_normalize = l2_normalize
        self.conv = keras.layers.Conv1D(filters, kernel_size, strides=1, padding="valid", activation="relu",
                                        dtype=self.dtype_policy, name="conv")

    def build(self, frames_shape):
        self.conv.build((None, None, frames_shape[-1]))

    def call(self, frames, num_frames, training=None):
        _, frames = valid_frames(frames, num_frames)
        # kernel_size - 1 zero frames at the end: output positions = T for any T >= 1, short videos included.
        frames = ops.pad(frames, [[0, 0], [0, self.kernel_size - 1], [0, 0]])
        activation = self.conv(frames)  # (B, T, filters)
        count = ops.cast(num_frames, "int32")
        valid_positions = ops.where(count >= self.kernel_size, count - self.kernel_size + 1, ops.minimum(count, 1))
        pooled = masked_max(activation, frame_mask(valid_positions, ops.shape(activation)[1], dtype="bool"))
        return l2_normalize(pooled) if self.l2_normalize else pooled

    def output_dim(self, input_dim):
        return self.filters

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size,
                       "l2_normalize": self.l2_normalize})
        return config
