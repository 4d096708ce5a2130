"""NeXtVLAD (Lin et al. 2018, "NeXtVLAD: An Efficient Neural Network to Aggregate Frame-level Features for
Large-scale Video Classification", the 2018 challenge's 3rd place): the encoder of one stream and the two-stream
pooling with SE Context Gating. Section and equation numbers are the paper's (ECCV 2018 workshop version).
"""

import keras
from keras import ops

from yt8m_tf.pooling.context_gating import SEContextGating
from yt8m_tf.pooling.utils import SLIM_BN, l2_normalize, valid_frames


@keras.saving.register_keras_serializable(package="yt8m_tf")
class NeXtVLAD(keras.layers.Layer):
    """One NeXtVLAD stream (section 3.2, Fig. 2). With x_t the N-dimensional frame:

        x'_t = x_t W_e + b_e                                expansion to lambda*N           (linear FC)
        x'_t -> G groups x~_t^g of lambda*N/G                reshape
        alpha_g(x'_t) = sigmoid(x'_t w_g + b_g)             attention over groups           (Eq. 7)
        alpha_gk(x'_t) = softmax_k(BN(x'_t W_c))_gk          assignment of group g, K clusters (Eq. 6)
        v_jk = sum_{t,g} mask(t) alpha_g alpha_gk (x~_tj^g - c_kj)                          (Eq. 5, 8, 18-19)

    then intra-normalisation (each cluster's lambda*N/G vector to unit L2 norm), flatten (D-major, as the
    original) and batch norm. Unlike WILLOW's NetVLAD there is no global L2 normalisation. Weights: kernels
    lambda*N (N + G + G K + K/G) (Eq. 9 without the hidden layer's share), biases lambda*N + G, and the cluster
    and output batch norms. All kernels use He initialisation (the original's `slim.variance_scaling_initializer`).

    Args:
        cluster_size: int K (flag `nextvlad_cluster_size`; the paper 112 or 128; audio gets K/2).
        groups: int G (flag `groups`, 8; audio gets G/2).
        expansion: int lambda (flag `expansion`, 2).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: `frames` (B, T, N) float, `mask` (B, T) bool. Output: (B, K * lambda*N / G); `output_dim(N)` gives it.
    Mask: masked frames get zero attention (Eq. 18-19) and stay out of the cluster batch-norm statistics; a video
    without valid frames encodes to zeros before the final batch norm.
    """

    def __init__(self, cluster_size=64, groups=8, expansion=2, **kwargs):
        super().__init__(**kwargs)
        self.cluster_size = cluster_size
        self.groups = groups
        self.expansion = expansion
        bn = dict(SLIM_BN, dtype=self.dtype_policy)
        self.cluster_bn = keras.layers.BatchNormalization(name="cluster_bn", **bn)
        self.vlad_bn = keras.layers.BatchNormalization(name="vlad_bn", **bn)

    def _group_width(self, input_dim):
        expanded = self.expansion * input_dim
        if expanded % self.groups:
            raise ValueError(f"NeXtVLAD: expansion * N = {expanded} is not divisible by groups {self.groups}")
        return expanded // self.groups

    def build(self, frames_shape):
        input_dim = frames_shape[-1]
        expanded, width = self.expansion * input_dim, self._group_width(input_dim)
        self.expansion_weights = self.add_weight(name="expansion_weights", shape=(input_dim, expanded),
                                                 initializer="he_normal")
        self.expansion_biases = self.add_weight(name="expansion_biases", shape=(expanded,), initializer="zeros")
        self.attention_weights = self.add_weight(name="attention_weights", shape=(expanded, self.groups),
                                                 initializer="he_normal")
        self.attention_biases = self.add_weight(name="attention_biases", shape=(self.groups,), initializer="zeros")
        self.cluster_weights = self.add_weight(name="cluster_weights",
                                               shape=(expanded, self.groups * self.cluster_size),
                                               initializer="he_normal")
        self.cluster_centers = self.add_weight(name="cluster_centers", shape=(width, self.cluster_size),
                                               initializer="he_normal")
        self.cluster_bn.build((None, None, self.groups * self.cluster_size))
        self.vlad_bn.build((None, width * self.cluster_size))

    def call(self, frames, mask, training=None):
        batch, steps = ops.shape(frames)[0], ops.shape(frames)[1]
        dtype = frames.dtype
        expanded = ops.matmul(frames, ops.cast(self.expansion_weights, dtype)) + ops.cast(self.expansion_biases,
                                                                                           dtype)  # (B, T, lambda*N)
        attention = ops.sigmoid(ops.matmul(expanded, ops.cast(self.attention_weights, dtype))
                                + ops.cast(self.attention_biases, dtype))
        attention = ops.where(ops.expand_dims(mask, -1), attention, ops.zeros_like(attention))  # (B, T, G), Eq. 18
        logits = ops.matmul(expanded, ops.cast(self.cluster_weights, dtype))
        logits = self.cluster_bn(logits, training=training, mask=mask)
        logits = ops.reshape(logits, (batch, steps, self.groups, self.cluster_size))
        weights = ops.softmax(logits, axis=-1) * ops.expand_dims(attention, -1)  # (B, T, G, K)
        grouped = ops.reshape(expanded, (batch, steps, self.groups, -1))  # (B, T, G, lambda*N/G)
        sums = ops.einsum("btgk,btgd->bdk", weights, grouped)
        mass = ops.sum(weights, axis=(1, 2))  # (B, K)
        vlad = sums - ops.expand_dims(mass, 1) * ops.cast(self.cluster_centers, sums.dtype)  # (B, d, K)
        vlad = ops.transpose(l2_normalize(ops.transpose(vlad, (0, 2, 1))), (0, 2, 1))  # intra-normalisation
        return self.vlad_bn(ops.reshape(vlad, (batch, -1)), training=training)

    def output_dim(self, input_dim):
        return self._group_width(input_dim) * self.cluster_size

    def get_config(self):
        config = super().get_config()
        config.update({"cluster_size": self.cluster_size, "groups": self.groups, "expansion": self.expansion})
        return config


@keras.saving.register_keras_serializable(package="yt8m_tf")
class NeXtVLADPooling(keras.layers.Layer):
    """g of the NeXtVLAD model (section 3.3, Fig. 3): a NeXtVLAD per stream (rgb: K clusters, G groups; audio:
    K/2 and G/2, as the original), concatenated -> dropout -> x W_h (no bias) -> batch norm -> SE Context Gating
    (reduction r). The paper's classifier on top is a logistic layer (`--video_level_classifier_model=
    LogisticModel`). Weights of g for N=1024 video + 128 audio: Eq. 9 per stream plus the SE gate's 2 H^2 / r
    (Eq. 10), biases and batch norms.

    Args:
        feature_sizes: stream widths in input order (rgb 1024, audio 128); the first gets `cluster_size` and
            `groups`, every further one half of each.
        cluster_size: int K (flag `nextvlad_cluster_size`).
        groups: int G (flag `groups`).
        expansion: int lambda (flag `expansion`).
        hidden_size: int H (flag `nextvlad_hidden_size`).
        gating_reduction: int r (flag `gating_reduction`).
        dropout: float, dropout rate on the concatenated encodings while training (flag `drop_rate`, 0.5).
        seed: int or None, dropout seed.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int. Output: (B, hidden_size).
    Mask: padded frames never change the output; a 0-frame video gives a finite output.
    """

    def __init__(self, feature_sizes=(1024, 128), cluster_size=64, groups=8, expansion=2, hidden_size=1024,
                 gating_reduction=8, dropout=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.feature_sizes = [int(size) for size in feature_sizes]
        self.cluster_size = cluster_size
        self.groups = groups
        self.expansion = expansion
        self.hidden_size = hidden_size
        self.gating_reduction = gating_reduction
        self.dropout = dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        names = ["video_vlad", "audio_vlad"] + [f"stream_{i}_vlad" for i in range(2, len(self.feature_sizes))]
        self.encoders = [NeXtVLAD(cluster_size if i == 0 else cluster_size // 2, groups if i == 0 else groups // 2,
                                  expansion, dtype=self.dtype_policy, name=names[i])
                         for i in range(len(self.feature_sizes))]
        self.hidden_bn = keras.layers.BatchNormalization(name="hidden1_bn", dtype=self.dtype_policy, **SLIM_BN)
        self.context_gating = SEContextGating(gating_reduction, dtype=self.dtype_policy, name="context_gating")

    def build(self, frames_shape):
        if sum(self.feature_sizes) != frames_shape[-1]:
            raise ValueError(f"feature_sizes {self.feature_sizes} do not add up to the frame width {frames_shape[-1]}")
        for encoder, size in zip(self.encoders, self.feature_sizes):
            encoder.build((None, None, size))
        encoded = sum(e.output_dim(size) for e, size in zip(self.encoders, self.feature_sizes))
        self.hidden_weights = self.add_weight(name="hidden1_weights", shape=(encoded, self.hidden_size),
                                              initializer="he_normal")
        self.hidden_bn.build((None, self.hidden_size))
        self.context_gating.build((None, self.hidden_size))

    def call(self, frames, num_frames, training=None):
        mask, frames = valid_frames(frames, num_frames)
        encoded, start = [], 0
        for encoder, size in zip(self.encoders, self.feature_sizes):
            encoded.append(encoder(frames[..., start:start + size], mask, training=training))
            start += size
        x = ops.concatenate(encoded, axis=-1)
        if training and self.dropout > 0:
            x = keras.random.dropout(x, self.dropout, seed=self.seed_generator)
        h = self.hidden_bn(ops.matmul(x, ops.cast(self.hidden_weights, x.dtype)), training=training)
        return self.context_gating(h, training=training)

    def output_dim(self, input_dim):
        return self.hidden_size

    def get_config(self):
        config = super().get_config()
        config.update({
            "feature_sizes": self.feature_sizes,
            "cluster_size": self.cluster_size,
            "groups": self.groups,
            "expansion": self.expansion,
            "hidden_size": self.hidden_size,
            "gating_reduction": self.gating_reduction,
            "dropout": self.dropout,
            "seed": self.seed,
        })
        return config
