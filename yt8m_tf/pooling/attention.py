"""Indirect Clustering self-attention pooling, paper section 2.2.4 (Eq. 10)."""

import keras
from keras import ops

from yt8m_tf.pooling.utils import l2_normalize, valid_frames


@keras.saving.register_keras_serializable(package="yt8m_tf")
class IndirectClusteringPooling(keras.layers.Layer):
    """p_t = softmax_t(sum_i <I_t, I_i>) (Eq. 10), g = sum_t p_t I_t.

    A frame similar to many other frames (the 'largest cluster', the main scene) gets a large weight. Because
    sum_i <I_t, I_i> = <I_t, sum_i I_i>, the logits cost O(T D), not O(T^2 D): one masked sum, one batched dot.
    Both the inner sum over i and the softmax over t run over valid frames only. No trainable weights.

    Numerics: for 1152-d frames with values in [-2, 2] the logits reach 1e4-1e6, so the softmax subtracts the max
    over valid steps before exp (in practice it is close to an argmax); logits, weights and the weighted sum are
    computed in float32 also under mixed precision and the result is cast back to the compute dtype.

    Args:
        alpha: float, multiplies the logits (a sharpening factor; the original code's flag `alpha`, default 1.0; the
            paper has none, i.e. alpha = 1).
        l2_normalize: bool, L2-normalise the output. Not in the paper (the first version of the original
            `SoftClusteringModel` did it). Default False.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int.
    Output: (B, D); `output_dim(D) = D`.
    Mask: padded frames get weight 0 and are left out of sum_i I_i; a 0-frame video gives zeros (no NaN).
    `attention_weights(frames, num_frames)` returns the (B, T) weights p.

    Note on the original code (`SoftClusteringModel`): it summed over all 300 padded frames and applied
    `tf.nn.softmax` to a (B, T, 1) tensor, i.e. over an axis of size 1, so every weight was 1 and the layer computed a
    plain sum of frames (later versions added a learned ReLU projection before the dot products and a layer norm +
    ReLU after the sum). This layer implements Eq. 10 as written.
    """

    def __init__(self, alpha=1.0, l2_normalize=False, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha
        self.l2_normalize = l2_normalize

    def attention_weights(self, frames, num_frames):
        mask, frames = valid_frames(ops.cast(frames, "float32"), num_frames)
        total = ops.sum(frames, axis=1, keepdims=True)  # (B, 1, D) = sum over valid i of I_i
        logits = self.alpha * ops.sum(frames * total, axis=-1)  # (B, T)
        lowest = ops.full_like(logits, -3.0e38)
        peak = ops.max(ops.where(mask, logits, lowest), axis=1, keepdims=True)
        peak = ops.where(ops.any(mask, axis=1, keepdims=True), peak, ops.zeros_like(peak))
        shifted = ops.where(mask, logits - peak, ops.zeros_like(logits))
        unnormalised = ops.where(mask, ops.exp(shifted), ops.zeros_like(logits))
        return unnormalised / ops.maximum(ops.sum(unnormalised, axis=1, keepdims=True), 1e-30)

    def call(self, frames, num_frames, training=None):
        weights = self.attention_weights(frames, num_frames)
        _, frames32 = valid_frames(ops.cast(frames, "float32"), num_frames)
        pooled = ops.sum(ops.expand_dims(weights, -1) * frames32, axis=1)
        if self.l2_normalize:
            pooled = l2_normalize(pooled)
        return ops.cast(pooled, self.compute_dtype)

    def output_dim(self, input_dim):
        return input_dim

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "l2_normalize": self.l2_normalize})
        return config
