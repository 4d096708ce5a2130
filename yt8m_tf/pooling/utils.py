"""Small helpers shared by the pooling layers (the frame masks themselves live in `yt8m_tf.masking`)."""

from keras import ops

from yt8m_tf.masking import frame_mask

# slim.batch_norm defaults (decay 0.999, epsilon 0.001): the starter code's DbofModel, WILLOW's and NeXtVLAD's code
# all used them. Keras' BatchNormalization defaults are momentum 0.99, epsilon 0.001.
SLIM_BN = {"momentum": 0.999, "epsilon": 1e-3}


def l2_normalize(x, epsilon=1e-12):
    """x / max(||x||_2, sqrt(epsilon)) over the last axis, as `tf.nn.l2_normalize`; computed in float32.

    The original code (seilna/youtube-8m) applies this to most pooled sums. A zero vector (a 0-frame video) stays
    zero and, unlike `tf.nn.l2_normalize`, gets a zero gradient (not 1/sqrt(epsilon) = 1e6, which is inf in float16).
    """
    x32 = ops.cast(x, "float32")
    squared_norm = ops.sum(ops.square(x32), axis=-1, keepdims=True)
    nonzero = squared_norm > 0.0
    safe = ops.where(nonzero, ops.maximum(squared_norm, epsilon), ops.ones_like(squared_norm))
    return ops.cast(ops.where(nonzero, x32 * ops.rsqrt(safe), ops.zeros_like(x32)), x.dtype)


def valid_frames(frames, num_frames):
    """(B, T) bool mask of valid frames and the frames with every padded row set to exactly zero.

    Zeroing with `where` (not a multiply) keeps NaN/inf garbage in the padding from leaking into sums.
    """
    mask = frame_mask(num_frames, ops.shape(frames)[1], dtype="bool")
    return mask, ops.where(ops.expand_dims(mask, -1), frames, ops.zeros_like(frames))
