"""A mixture of NeXtVLAD models with a gate on the mean frame (Lin et al. 2018 section 3.4, Eq. 12-13; the 2018
challenge's 3rd place, 0.88722 private GAP with three members): a frames-taking head that replaces g."""

import keras
from keras import ops

from yt8m_tf.classifiers.logistic import Logistic
from yt8m_tf.masking import masked_mean
from yt8m_tf.pooling.nextvlad import NeXtVLADPooling
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
        num_classes: int C.
        num_members: int M (flag `mix_number`, 3).
        feature_sizes, cluster_size, groups, expansion, hidden_size, gating_reduction, dropout: each member's
            `NeXtVLADPooling` arguments.
        l2_penalty: float, L2 of each member's logistic layer (the paper: 1e-5 on the video-level classifier).
        bias_initializer_value: float, initial logit bias of the logistic layers (`--output_bias_init`).
        seed: int or None, dropout seed of the first member (member m uses seed + m).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int (`takes_frames = True`).
    Output: (B, C) float32 mixture probabilities; with `return_members=True` a dict of float32 tensors:
    `predictions` (B, C), `mixture_logits` (B, C), `member_logits` (B, M, C), `member_predictions` (B, M, C).
    Mask: padded frames change nothing; a 0-frame video gives finite predictions.
    """

    takes_frames = True
    returns_members = True

    def __init__(self, num_classes, num_members=3, feature_sizes=(1024, 128), cluster_size=64, groups=8,
                 expansion=2, hidden_size=1024, gating_reduction=8, dropout=0.5, l2_penalty=1e-8,
                 bias_initializer_value=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.num_members = num_members
        self.feature_sizes = [int(size) for size in feature_sizes]
        self.cluster_size = cluster_size
        self.groups = groups
        self.expansion = expansion
        self.hidden_size = hidden_size
        self.gating_reduction = gating_reduction
        self.dropout = dropout
        self.l2_penalty = l2_penalty
        self.bias_initializer_value = bias_initializer_value
        self.seed = seed
        self.gate_bn = keras.layers.BatchNormalization(dtype="float32", name="mix_weights_bn", **SLIM_BN)
        self.gate = keras.layers.Dense(num_members, kernel_initializer="he_normal", dtype="float32",
                                       name="mix_weights")
        self.poolings = [NeXtVLADPooling(self.feature_sizes, cluster_size, groups, expansion, hidden_size,
                                         gating_reduction, dropout, seed=None if seed is None else seed + m,
                                         dtype=self.dtype_policy, name=f"branch_{m}")
                         for m in range(num_members)]
        self.heads = [Logistic(num_classes, l2_penalty=l2_penalty, bias_initializer_value=bias_initializer_value,
                               dtype=self.dtype_policy, name=f"branch_{m}_logistic") for m in range(num_members)]

    def build(self, frames_shape):
        width = frames_shape[-1]
        self.gate_bn.build((None, width))
        self.gate.build((None, width))
        for pooling, head in zip(self.poolings, self.heads):
            pooling.build(frames_shape)
            head.build((None, self.hidden_size))

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
        config.update({
            "num_classes": self.num_classes,
            "num_members": self.num_members,
            "feature_sizes": self.feature_sizes,
            "cluster_size": self.cluster_size,
            "groups": self.groups,
            "expansion": self.expansion,
            "hidden_size": self.hidden_size,
            "gating_reduction": self.gating_reduction,
            "dropout": self.dropout,
            "l2_penalty": self.l2_penalty,
            "bias_initializer_value": self.bias_initializer_value,
            "seed": self.seed,
        })
        return config
