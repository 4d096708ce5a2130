"""Position Encoding pooling, paper section 2.2.3 (Eq. 8-9), after End-to-End Memory Networks (Sukhbaatar 2015)."""

import keras
from keras import ops

from yt8m_tf.masking import masked_sum
from yt8m_tf.pooling.utils import l2_normalize, valid_frames


def position_encoding_matrix(length, num_steps, num_features):
    """L_ij = (1 - i/T) - (j/D)(1 - 2 i/T) for i = 1..num_steps, j = 1..D (1-based, as the paper and MemN2N).

    Args:
        length: T, a Python number or a (B,) tensor of per-video lengths.
        num_steps: the padded length (rows of L).
        num_features: D.

    Returns:
        (num_steps, D) for a scalar T, (B, num_steps, D) for per-video T; float32.
    """
    i = ops.arange(1, num_steps + 1, dtype="float32")
    j = ops.arange(1, num_features + 1, dtype="float32") / float(num_features)
    length = ops.cast(length, "float32")
    if len(length.shape) == 1:
        ratio = ops.expand_dims(i, 0) / ops.expand_dims(length, 1)  # (B, T)
    else:
        ratio = i / length  # (T,)
    ratio = ops.expand_dims(ratio, -1)
    return (1.0 - ratio) - j * (1.0 - 2.0 * ratio)


@keras.saving.register_keras_serializable(package="yt8m_tf")
class PositionEncodingPooling(keras.layers.Layer):
    """I <- I o L (Eq. 8), O_g = sum_t I_t (Eq. 9), with L_ij = (1 - i/T) - (j/D)(1 - 2 i/T).

    Indices are 1-based (i = 1..T frames, j = 1..D features), the convention of the paper's formula and of
    End-to-End Memory Networks; so the first frame gets weights close to 1 - 1/T and the last frame T gets j/D.
    The paper writes j/1152; here the divisor is the input width D (= 1152 for rgb + audio).

    Two choices of T:
    - `length="num_frames"` (default): T is each video's own num_frames, so the weights span the real video and the
      output is invariant to padding.
    - `length="max_frames"`: T is fixed (`fixed_length`, default 300, the original code's `J = 300`, i.e. the padded
      length of the 2017 reader) whatever the video's length; with `fixed_length=None` T is the input's padded length
      (then appending padding changes the output). Frames past num_frames are still excluded from the sum.

    Args:
        length: "num_frames" or "max_frames", see above.
        fixed_length: int or None, T in "max_frames" mode.
        l2_normalize: bool, L2-normalise O_g. The paper has no normalisation; the original code
            (`PositionEncodingModel`) did, so True reproduces the code. Default False.

    Input: `frames` (B, T_pad, D) float, `num_frames` (B,) int.
    Output: (B, D); `output_dim(D) = D`.
    Mask: frames t >= num_frames are excluded from the sum; a 0-frame video gives zeros.

    Note on the original code: it builds L with 0-based i, j and Python-2 integer division (`j/J`, `k/d` on ints),
    so its L was all ones and "Position Encoding" trained as a plain (L2-normalised) sum of frames.
    """

    def __init__(self, length="num_frames", fixed_length=300, l2_normalize=False, **kwargs):
        super().__init__(**kwargs)
        if length not in ("num_frames", "max_frames"):
            raise ValueError(f"length must be 'num_frames' or 'max_frames', got {length!r}")
        self.length = length
        self.fixed_length = fixed_length
        self.l2_normalize = l2_normalize

    def call(self, frames, num_frames, training=None):
        mask, frames = valid_frames(frames, num_frames)
        num_steps = frames.shape[1] if frames.shape[1] is not None else ops.shape(frames)[1]
        if self.length == "num_frames":
            length = ops.maximum(ops.cast(num_frames, "float32"), 1.0)
        else:
            length = float(self.fixed_length) if self.fixed_length else ops.cast(num_steps, "float32")
        weights = position_encoding_matrix(length, num_steps, frames.shape[-1])
        pooled = masked_sum(frames * ops.cast(weights, frames.dtype), mask)
        return l2_normalize(pooled) if self.l2_normalize else pooled

    def output_dim(self, input_dim):
        return input_dim

    def get_config(self):
        config = super().get_config()
        config.update({"length": self.length, "fixed_length": self.fixed_length,
                       "l2_normalize": self.l2_normalize})
        return config
