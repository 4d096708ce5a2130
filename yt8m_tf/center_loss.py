"""Multi-label center loss L_c (paper 2.5.1, Eq. 21-22): a layer, because it owns the class centres.

Needs TensorFlow (the centre update all-reduces over the replicas of a tf.distribute strategy), unlike the other
losses (`yt8m_tf.losses`), so it is imported where it is used.
"""

import keras
import tensorflow as tf
from keras import ops


def _sum_over_replicas(*tensors):
    """All-reduce (sum) across the replicas of a tf.distribute strategy; unchanged outside one."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return tuple(context.all_reduce(tf.distribute.ReduceOp.SUM, list(tensors)))


@keras.saving.register_keras_serializable(package="yt8m_tf")
class MultiLabelCenterLoss(keras.layers.Layer):
    """Multi-label center loss (Eq. 21) with the centre update of Wen et al. (2016).

    Loss, per video with label set Y (N = |Y| labels) and embedding e:

        L_c = (1 / N) sum_{k in Y} ||e - c_k||_2^2                      (Eq. 21; 0 when N = 0)

    computed as `||e - cbar||^2 + (1/N) sum_k ||c_k||^2 - ||cbar||^2` with cbar the mean of the video's centres,
    so no (B, C, d) tensor is formed. Gradients flow to the embedding only; the caller forms
    `L = L_s + lambda * L_c` (Eq. 22, lambda = 0.001 in Table 4).

    Update, when `training` is true, after the loss is read (Wen et al. 2016, Eq. 4, each (video, label) pair
    counting as one sample):

        delta_j = sum_i y_ij (c_j - e_i) / (1 + sum_i y_ij)             c_j <- c_j - center_alpha * delta_j

    Under `tf.distribute` the per-class counts and embedding sums are all-reduced over the replicas first, so
    every replica applies the same global-batch update; the centres are a non-trainable float32 weight
    (zero-initialised, as in both Wen et al. and the original code) with `aggregation="mean"`.

    Differences from the original code (seilna/youtube-8m losses.py `CenterLoss`), which the paper's lambda was
    tuned with: there the loss was `mean` over all (pair, dimension) entries of the batch (a factor ~1/d of Eq.
    21), the update was `c <- c - (1 - 0.95) (c - e)` per pair without the 1/(1 + n) normalisation, and the
    `tf.scatter_sub` op was never fetched (nothing depended on it), so in graph mode its centres stayed at zero.
    The embedding there was the classifier's bottleneck layer; in this project the model passes O_g.

    Args:
        num_classes: int, number of classes C.
        center_alpha: float, centre learning rate alpha of Wen et al. Default 0.5.
        **kwargs: standard `keras.layers.Layer` arguments. The dtype policy defaults to float32.

    Input shapes: embedding (batch, d) float; labels (batch, num_classes) multi-hot.
    Output shape: (batch,) float32 per-example center losses.
    """

    def __init__(self, num_classes, center_alpha=0.5, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.center_alpha = center_alpha

    def build(self, embedding_shape, labels_shape=None):
        self.centers = self.add_weight(shape=(self.num_classes, embedding_shape[-1]), initializer="zeros",
                                       trainable=False, aggregation="mean", name="centers")

    def call(self, embedding, labels, training=None):
        e = ops.cast(embedding, "float32")
        y = ops.cast(labels, "float32")
        centers = ops.stop_gradient(ops.convert_to_tensor(self.centers))

        num_labels = ops.sum(y, axis=-1)
        safe = ops.maximum(num_labels, 1.0)
        mean_center = ops.matmul(y, centers) / safe[:, None]
        center_norms = ops.sum(ops.square(centers), axis=-1)
        spread = ops.sum(y * center_norms[None, :], axis=-1) / safe - ops.sum(ops.square(mean_center), axis=-1)
        loss = ops.sum(ops.square(e - mean_center), axis=-1) + ops.maximum(spread, 0.0)
        loss = ops.where(num_labels > 0, loss, ops.zeros_like(loss))

        if training:
            counts = ops.sum(y, axis=0)[:, None]
            sums = ops.matmul(ops.transpose(y), e)
            counts, sums = _sum_over_replicas(counts, sums)
            delta = (counts * centers - sums) / (1.0 + counts)
            self.centers.assign_sub(self.center_alpha * delta)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "center_alpha": self.center_alpha})
        return config
