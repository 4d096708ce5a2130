"""Starter-code baselines (google/youtube-8m `frame_level_models.py`): mean, max and Deep Bag of Frames pooling."""

import math

import keras
from keras import ops

from yt8m_tf.masking import masked_max, masked_mean
from yt8m_tf.pooling.context_gating import GardenContextGate
from yt8m_tf.pooling.frame_sampling import frames_to_pool
from yt8m_tf.pooling.utils import SLIM_BN, valid_frames


@keras.saving.register_keras_serializable(package="yt8m_tf")
class MeanPooling(keras.layers.Layer):
    """Mean of the valid frames (the pooling of the starter code's `FrameLevelLogisticModel`).

    No arguments besides the base-layer `**kwargs`.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int.
    Output: (B, D) = sum_{t < num_frames} I_t / num_frames; `output_dim(D) = D`.
    Mask: frames t >= num_frames are ignored; a 0-frame video gives zeros.
    """

    def call(self, frames, num_frames, training=None):
        mask, frames = valid_frames(frames, num_frames)
        return masked_mean(frames, mask)

    def output_dim(self, input_dim):
        return input_dim


@keras.saving.register_keras_serializable(package="yt8m_tf")
class MaxPooling(keras.layers.Layer):
    """Element-wise max over the valid frames.

    No arguments besides the base-layer `**kwargs`.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int.
    Output: (B, D) = max_{t < num_frames} I_t; `output_dim(D) = D`.
    Mask: frames t >= num_frames are ignored; a 0-frame video gives zeros.
    """

    def call(self, frames, num_frames, training=None):
        mask, _ = valid_frames(frames, num_frames)
        return masked_max(frames, mask)

    def output_dim(self, input_dim):
        return input_dim


@keras.saving.register_keras_serializable(package="yt8m_tf")
class DBoFPooling(keras.layers.Layer):
    """Deep Bag of Frames pooling (the starter code's `DbofModel` up to its video-level classifier).

    Sequence, as in DbofModel: [training: sample `sample_frames` frames] -> input batch norm -> frame projection to
    `cluster_size` without bias (init N(0, 1/D)) -> batch norm (or a bias when `add_batch_norm=False`) -> activation
    -> [Model Garden's context gate of each frame's cluster activations] -> max or average over frames -> projection
    to `hidden_size` (init N(0, 1/cluster_size)) -> batch norm (or a bias) -> activation. Batch-norm statistics of
    the frame-level stages are computed over valid frames only.

    Args:
        cluster_size: int, the 'cluster' (bag) width; flag `dbof_cluster_size` (8192).
        hidden_size: int, the output width d; flag `dbof_hidden_size` (1024).
        add_batch_norm: bool, flag `dbof_add_batch_norm` (True).
        pooling_method: "max" or "average", flag `dbof_pooling_method` ("max").
        activation: str, a Keras activation; flag `dbof_activation`, whose default is the starter's "sigmoid"
            (google/youtube-8m). The 2017 starter code (and seilna/youtube-8m) hard-coded "relu6", which
            train_dirs written before the flag existed used (`registry.LATER_DEFAULTS`).
        sample_frames: int, frames sampled per video at training time (flag `iterations`, 30); 0 disables sampling.
        sample_random_frames: bool, True samples independent frames (`sample_random_frames` flag, True), False a
            run of consecutive frames. See `yt8m_tf.pooling.frame_sampling`.
        context_gate: bool, Model Garden's `use_context_gate_cluster_layer` (`GardenContextGate` on the cluster
            activations, before pooling; flag `use_context_gate_cluster_layer`, False).
        context_gate_bottleneck_size: int, its `context_gate_cluster_bottleneck_size` (0: a full (C, C) gate).
        seed: int or None, seed of the sampling.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int.
    Output: (B, hidden_size); `output_dim(D) = hidden_size`.
    Mask: padded frames are never sampled, never enter the batch-norm statistics or the pooling. The starter code
    also sampled at evaluation; here evaluation (training=False) pools over all valid frames, deterministically.
    A 0-frame video pools to zeros before the hidden projection (its output is then finite but not zero).
    """

    def __init__(self, cluster_size=8192, hidden_size=1024, add_batch_norm=True, pooling_method="max",
                 activation="sigmoid", sample_frames=30, sample_random_frames=True, context_gate=False,
                 context_gate_bottleneck_size=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if pooling_method not in ("max", "average"):
            raise ValueError(f"pooling_method must be 'max' or 'average', got {pooling_method!r}")
        self.cluster_size = cluster_size
        self.hidden_size = hidden_size
        self.add_batch_norm = add_batch_norm
        self.pooling_method = pooling_method
        self.activation = activation
        self.sample_frames = sample_frames
        self.sample_random_frames = sample_random_frames
        self.context_gate = context_gate
        self.context_gate_bottleneck_size = context_gate_bottleneck_size
        self.seed = seed
        self.cluster_gate = (GardenContextGate(context_gate_bottleneck_size, dtype=self.dtype_policy,
                                               name="context_gate_cluster") if context_gate else None)
        self._activation_fn = keras.activations.get(activation)
        self.seed_generator = keras.random.SeedGenerator(seed)
        if add_batch_norm:
            bn = dict(SLIM_BN, dtype=self.dtype_policy)
            self.input_bn = keras.layers.BatchNormalization(name="input_bn", **bn)
            self.cluster_bn = keras.layers.BatchNormalization(name="cluster_bn", **bn)
            self.hidden_bn = keras.layers.BatchNormalization(name="hidden1_bn", **bn)

    def build(self, frames_shape):
        feature_size = frames_shape[-1]
        self.cluster_weights = self.add_weight(
            name="cluster_weights", shape=(feature_size, self.cluster_size),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(feature_size)))
        self.hidden_weights = self.add_weight(
            name="hidden1_weights", shape=(self.cluster_size, self.hidden_size),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(self.cluster_size)))
        if self.add_batch_norm:
            self.input_bn.build((None, None, feature_size))
            self.cluster_bn.build((None, None, self.cluster_size))
            self.hidden_bn.build((None, self.hidden_size))
        else:
            self.cluster_biases = self.add_weight(
                name="cluster_biases", shape=(self.cluster_size,),
                initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(feature_size)))
            self.hidden_biases = self.add_weight(
                name="hidden1_biases", shape=(self.hidden_size,),
                initializer=keras.initializers.RandomNormal(stddev=0.01))
        if self.cluster_gate is not None:
            self.cluster_gate.build((None, None, self.cluster_size))

    def call(self, frames, num_frames, training=None):
        mask, x = frames_to_pool(frames, num_frames, self.sample_frames, self.sample_random_frames, training,
                                 seed=self.seed_generator)
        if self.add_batch_norm:
            x = self.input_bn(x, training=training, mask=mask)
        x = ops.matmul(x, ops.cast(self.cluster_weights, x.dtype))
        if self.add_batch_norm:
            x = self.cluster_bn(x, training=training, mask=mask)
        else:
            x = x + ops.cast(self.cluster_biases, x.dtype)
        x = self._activation_fn(x)
        if self.cluster_gate is not None:
            x = self.cluster_gate(x, training=training, mask=mask)
        x = masked_max(x, mask) if self.pooling_method == "max" else masked_mean(x, mask)

        x = ops.matmul(x, ops.cast(self.hidden_weights, x.dtype))
        if self.add_batch_norm:
            x = self.hidden_bn(x, training=training)
        else:
            x = x + ops.cast(self.hidden_biases, x.dtype)
        return self._activation_fn(x)

    def output_dim(self, input_dim):
        return self.hidden_size

    def get_config(self):
        config = super().get_config()
        config.update({
            "cluster_size": self.cluster_size,
            "hidden_size": self.hidden_size,
            "add_batch_norm": self.add_batch_norm,
            "pooling_method": self.pooling_method,
            "activation": self.activation,
            "sample_frames": self.sample_frames,
            "sample_random_frames": self.sample_random_frames,
            "context_gate": self.context_gate,
            "context_gate_bottleneck_size": self.context_gate_bottleneck_size,
            "seed": self.seed,
        })
        return config
