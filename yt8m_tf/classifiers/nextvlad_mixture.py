"""A mixture of NeXtVLAD models with a gate on the mean frame (Lin et al. 2018 section 3.4, Eq. 12-13; the 2018
challenge's 3rd place, 0.88722 private GAP with three members): a frames-taking head that replaces g."""

import keras
from keras import ops

from yt8m_tf.masking import masked_mean
from yt8m_tf.pooling.utils import SLIM_BN, valid_frames


@keras.saving.register_keras_serializable(package="yt8m_tf")
class NeXtVLADMixture(keras.layers.Layer):
    """M NeXtVLAD models (each `NeXtVLADPooling` + a logistic classifier) mixed in logit space:

        a(x_bar) = softmax(BN(x_bar) W_a + b_a)                x_bar: the mean of the valid frames   (Eq. 13)
        z_e = sum_m a_m(x_bar) z_m                            z_m: member m's logits                (Eq. 12)
        predictions = sigmoid(z_e)

    Training uses, besides the labels, online knowledge distillation from the mixture to each member (Eq. 14-16):
    `call(..., return_members=True)` also returns the members' logits and probabilities, and
    `yt8m_tf.losses.online_distillation_loss(mixture_logits, member_logits)` gives the KL term. Eq. 16:
    L = sum_m L_bce(member m) + L_bce(mixture) + T^2 sum_m KL(p_e || p_m).

    Each member has its own randomly initialised weights, dropout and batch norms; the original gate
    (`MixNeXtVladModel`) used the mean over all 300 padded frames, this one over the valid frames only.

    Args:
        poolings: the M members' g (`NeXtVLADPooling` layers or their configs; the registry gives each the
            `--nextvlad_*` settings, `--mix_number` of them).
        heads: the M members' `Logistic` classifiers (or configs), all with the same number of classes C.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int (`takes_frames = True`).
    Output: (B, C) float32 mixture probabilities; with `return_members=True` a dict of float32 tensors:
    `predictions` (B, C), `mixture_logits` (B, C), `member_logits` (B, M, C), `member_predictions` (B, M, C).
    Mask: padded frames change nothing; a 0-frame video gives finite predictions.
    """

    takes_frames = True
    returns_members = True

    def __init__(self, poolings, heads, **kwargs):
        super().__init__(**kwargs)
        self.poolings = [keras.saving.deserialize_keras_object(p) if isinstance(p, dict) else p for p in poolings]
        self.heads = [keras.saving.deserialize_keras_object(h) if isinstance(h, dict) else h for h in heads]
        if not self.poolings or len(self.poolings) != len(self.heads):
            raise ValueError(f"NeXtVLADMixture needs as many heads as poolings (>= 1), got {len(self.poolings)} "
                             f"and {len(self.heads)}")
        self.gate_bn = keras.layers.BatchNormalization(dtype="float32", name="mix_weights_bn", **SLIM_BN)
        self.gate = keras.layers.Dense(len(self.poolings), kernel_initializer="he_normal", dtype="float32",
                                       name="mix_weights")

    def build(self, frames_shape):
        width = frames_shape[-1]
        self.gate_bn.build((None, width))
        self.gate.build((None, width))
        for pooling, head in zip(self.poolings, self.heads):
            if not pooling.built:  # deserialized members come built
                pooling.build(frames_shape)
            if not head.built:
                head.build((None, pooling.output_dim(width)))

    def call(self, frames, num_frames, training=None, return_members=False):
        mask, valid = valid_frames(ops.cast(frames, "float32"), num_frames)
        mean_frame = self.gate_bn(masked_mean(valid, mask), training=training)
        mix = ops.softmax(self.gate(mean_frame), axis=-1)  # (B, M), Eq. 13
        member_logits = ops.stack(
            [ops.cast(head.logits(pooling(frames, num_frames, training=training)), "float32")
             for pooling, head in zip(self.poolings, self.heads)], axis=1)  # (B, M, C)
        mixture_logits = ops.sum(ops.expand_dims(mix, -1) * member_logits, axis=1)  # Eq. 12
        predictions = ops.sigmoid(mixture_logits)
        if not return_members:
            return predictions
        return {"predictions": predictions, "mixture_logits": mixture_logits, "member_logits": member_logits,
                "member_predictions": ops.sigmoid(member_logits)}

    def get_config(self):
        config = super().get_config()
        config.update({"poolings": [keras.saving.serialize_keras_object(p) for p in self.poolings],
                       "heads": [keras.saving.serialize_keras_object(h) for h in self.heads]})
        return config
