"""The clustering encoders of WILLOW (Miech et al. 2017, "Learnable pooling with Context Gating for video
classification", section 3 "Learnable pooling methods"): NetVLAD, NetRVLAD, NetFV and Soft-DBoW.

Each encodes ONE feature stream (rgb or audio) of a video: (B, T, D) frames and a (B, T) mask of the frames to
aggregate -> (B, output_dim(D)). All share the soft assignment of frame x_t to K clusters,

    a_k(x_t) = softmax_k(BN(x_t W))        (W: D x K, init N(0, 1/D); a bias instead of BN when add_batch_norm=False)

with a_k(x_t) = 0 for masked frames (padding never enters a sum, and batch-norm statistics are over valid frames
only), and differ in what they aggregate. `LearnablePooling` (pooling/learnable.py) runs one encoder per stream.
Output layouts follow the original code (antoine77340/Youtube-8M-WILLOW `frame_level_models.py`): descriptors
(D, K) flattened D-major (index d * K + k).
"""

import math

import keras
from keras import ops

from yt8m_tf.masking import masked_max
from yt8m_tf.pooling.utils import SLIM_BN, l2_normalize


class _ClusterEncoder(keras.layers.Layer):
    """The soft assignment shared by the encoders (not registered: use a subclass)."""

    def __init__(self, cluster_size, add_batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.cluster_size = cluster_size
        self.add_batch_norm = add_batch_norm
        self.cluster_bn = (keras.layers.BatchNormalization(dtype=self.dtype_policy, name="cluster_bn", **SLIM_BN)
                           if add_batch_norm else None)

    def _random_normal(self, feature_size, mean=0.0):
        return keras.initializers.RandomNormal(mean=mean, stddev=1.0 / math.sqrt(feature_size))

    def build(self, frames_shape):
        feature_size = frames_shape[-1]
        self.cluster_weights = self.add_weight(name="cluster_weights", shape=(feature_size, self.cluster_size),
                                               initializer=self._random_normal(feature_size))
        if self.cluster_bn is not None:
            self.cluster_bn.build((None, None, self.cluster_size))
        else:
            self.cluster_biases = self.add_weight(name="cluster_biases", shape=(self.cluster_size,),
                                                  initializer=self._random_normal(feature_size))

    def assignments(self, frames, mask, training=None):
        """(B, T, K) soft assignments a_k(x_t), zero for masked frames."""
        logits = ops.matmul(frames, ops.cast(self.cluster_weights, frames.dtype))
        if self.cluster_bn is not None:
            logits = self.cluster_bn(logits, training=training, mask=mask)
        else:
            logits = logits + ops.cast(self.cluster_biases, frames.dtype)
        assignments = ops.softmax(logits, axis=-1)
        return ops.where(ops.expand_dims(mask, -1), assignments, ops.zeros_like(assignments))

    def get_config(self):
        config = super().get_config()
        config.update({"cluster_size": self.cluster_size, "add_batch_norm": self.add_batch_norm})
        return config


def _weighted_sums(assignments, frames):
    """(B, T, K), (B, T, D) -> (B, K, D): sum_t a_k(x_t) x_t."""
    return ops.einsum("btk,btd->bkd", assignments, frames)


def _flatten_normalized(descriptors, intra=True):
    """(B, K, D) descriptors -> (B, D*K), D-major as the original; each cluster's D-vector L2-normalised first
    (intra-normalisation) when `intra`, then the whole vector."""
    if intra:
        descriptors = l2_normalize(descriptors)
    flat = ops.reshape(ops.transpose(descriptors, (0, 2, 1)), (ops.shape(descriptors)[0], -1))
    return l2_normalize(flat)


@keras.saving.register_keras_serializable(package="yt8m_tf")
class NetVLAD(_ClusterEncoder):
    """NetVLAD (Arandjelovic et al. 2016; WILLOW section 3 "NetVLAD"): residuals to K learned centres c_k,

        V(d, k) = sum_t a_k(x_t) (x_t(d) - c_k(d)),

    intra-normalised (each cluster's D-vector to unit L2 norm), flattened, and L2-normalised as a whole.

    Args:
        cluster_size: int K (flag `netvlad_cluster_size`; audio streams get K/2 from the registry).
        add_batch_norm: bool, batch norm of the assignment logits (True) or a bias (False).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: `frames` (B, T, D) float, `mask` (B, T) bool. Output: (B, D * K); `output_dim(D) = D * K`.
    Mask: masked frames get zero assignment; a video without valid frames gives zeros.
    Weights: cluster_weights (D, K), cluster_bn or cluster_biases (K,), cluster_centers (D, K) init N(0, 1/D).
    """

    def build(self, frames_shape):
        super().build(frames_shape)
        self.cluster_centers = self.add_weight(name="cluster_centers", shape=(frames_shape[-1], self.cluster_size),
                                               initializer=self._random_normal(frames_shape[-1]))

    def call(self, frames, mask, training=None):
        a = self.assignments(frames, mask, training)
        centers = ops.transpose(ops.cast(self.cluster_centers, frames.dtype))  # (K, D)
        residuals = _weighted_sums(a, frames) - ops.expand_dims(ops.sum(a, axis=1), -1) * centers
        return _flatten_normalized(residuals)

    def output_dim(self, input_dim):
        return input_dim * self.cluster_size


@keras.saving.register_keras_serializable(package="yt8m_tf")
class NetRVLAD(_ClusterEncoder):
    """NetRVLAD, "residual-less" VLAD (WILLOW section 3 "NetRVLAD"; `--lightvlad` in their code): NetVLAD without
    the centres, V(d, k) = sum_t a_k(x_t) x_t(d), intra- then globally L2-normalised. Half NetVLAD's weights.

    Args, input, output and mask as `NetVLAD`; no cluster_centers weight.
    """

    def call(self, frames, mask, training=None):
        return _flatten_normalized(_weighted_sums(self.assignments(frames, mask, training), frames))

    def output_dim(self, input_dim):
        return input_dim * self.cluster_size


@keras.saving.register_keras_serializable(package="yt8m_tf")
class NetFV(_ClusterEncoder):
    """NetFV (WILLOW section 3 "NetFV"): first- and second-order Fisher-vector statistics with learned centres
    c_k and scales sigma_k (D-vectors):

        FV1(d, k) = sum_t a_k(x_t) (x_t(d) - c_k(d)) / sigma_k(d)
        FV2(d, k) = sum_t a_k(x_t) [ (x_t(d) - c_k(d))^2 / sigma_k(d)^2 - 1 ]

    sigma = w^2 + 1e-6 with w initialised N(1, 1/D). FV1 is intra- then globally L2-normalised; FV2, as the
    original code, only globally (it is flattened before its first normalisation). The output is [FV1, FV2].

    Args:
        cluster_size: int K (flag `fv_cluster_size`).
        add_batch_norm: bool, as `NetVLAD`.
        couple_weights: bool, c = coupling_factor * W (the assignment weights), as the original's default
            `--fv_couple_weights=True`; False gives the centres their own weight (the published gated NetFV).
        coupling_factor: float, 0.01 (`--fv_coupling_factor`).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: `frames` (B, T, D), `mask` (B, T) bool. Output: (B, 2 * D * K); `output_dim(D) = 2 * D * K`.
    Mask: as `NetVLAD`.
    """

    def __init__(self, cluster_size, add_batch_norm=True, couple_weights=True, coupling_factor=0.01, **kwargs):
        super().__init__(cluster_size, add_batch_norm=add_batch_norm, **kwargs)
        self.couple_weights = couple_weights
        self.coupling_factor = coupling_factor

    def build(self, frames_shape):
        super().build(frames_shape)
        feature_size = frames_shape[-1]
        self.covar_weights = self.add_weight(name="covar_weights", shape=(feature_size, self.cluster_size),
                                             initializer=self._random_normal(feature_size, mean=1.0))
        if not self.couple_weights:
            self.cluster_centers = self.add_weight(name="cluster_centers", shape=(feature_size, self.cluster_size),
                                                   initializer=self._random_normal(feature_size))

    def call(self, frames, mask, training=None):
        dtype = frames.dtype
        a = self.assignments(frames, mask, training)
        centers = (self.coupling_factor * self.cluster_weights if self.couple_weights else self.cluster_centers)
        centers = ops.transpose(ops.cast(centers, dtype))  # (K, D)
        sigma = ops.transpose(ops.cast(ops.square(self.covar_weights) + 1e-6, dtype))  # (K, D)
        a_sum = ops.expand_dims(ops.sum(a, axis=1), -1)  # (B, K, 1)
        first = _weighted_sums(a, frames)  # sum_t a x
        second = _weighted_sums(a, ops.square(frames))  # sum_t a x^2
        fv1 = (first - a_sum * centers) / sigma
        fv2 = (second - 2.0 * first * centers + a_sum * ops.square(centers)) / ops.square(sigma) - a_sum
        return ops.concatenate([_flatten_normalized(fv1), _flatten_normalized(fv2, intra=False)], axis=-1)

    def output_dim(self, input_dim):
        return 2 * input_dim * self.cluster_size

    def get_config(self):
        config = super().get_config()
        config.update({"couple_weights": self.couple_weights, "coupling_factor": self.coupling_factor})
        return config


@keras.saving.register_keras_serializable(package="yt8m_tf")
class SoftDBoW(_ClusterEncoder):
    """Soft Deep Bag of visual Words (WILLOW section 3 "Soft-DBoW"; their `SoftDBoF`): the L2-normalised sum of
    the soft assignments, BoW(k) = sum_t a_k(x_t), and with `max_pool` also the L2-normalised max_t a_k(x_t).

    Args:
        cluster_size: int K (flag `dbof_cluster_size`; the original gave audio K/8).
        add_batch_norm: bool, as `NetVLAD`.
        max_pool: bool, append the max-pooled assignments (flag `softdbof_maxpool`, default False).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: `frames` (B, T, D), `mask` (B, T) bool. Output: (B, K), or (B, 2K) with `max_pool`.
    Mask: as `NetVLAD`.
    """

    def __init__(self, cluster_size, add_batch_norm=True, max_pool=False, **kwargs):
        super().__init__(cluster_size, add_batch_norm=add_batch_norm, **kwargs)
        self.max_pool = max_pool

    def call(self, frames, mask, training=None):
        a = self.assignments(frames, mask, training)
        pieces = [l2_normalize(ops.sum(a, axis=1))]
        if self.max_pool:
            pieces.append(l2_normalize(masked_max(a, mask)))
        return ops.concatenate(pieces, axis=-1) if self.max_pool else pieces[0]

    def output_dim(self, input_dim):
        return self.cluster_size * (2 if self.max_pool else 1)

    def get_config(self):
        config = super().get_config()
        config.update({"max_pool": self.max_pool})
        return config
