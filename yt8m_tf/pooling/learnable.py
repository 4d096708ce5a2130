"""WILLOW's two-stream learnable pooling (Miech et al. 2017, the 2017 challenge's 1st place): one clustering
encoder per feature stream, a hidden projection and Context Gating."""

import math

import keras
from keras import ops

from yt8m_tf.pooling.context_gating import ContextGating
from yt8m_tf.pooling.frame_sampling import frames_to_pool
from yt8m_tf.pooling.utils import SLIM_BN


@keras.saving.register_keras_serializable(package="yt8m_tf")
class LearnablePooling(keras.layers.Layer):
    """g of WILLOW's `NetVLADModelLF` / `NetFVModelLF` / `SoftDbofModelLF` (their Fig. 2, "two-stream"
    architecture, and section 4 "Context Gating"):

        [training: sample `sample_frames` frames] -> input batch norm (all features)
        -> split into the `feature_sizes` streams (rgb 1024, audio 128) -> encoders[i] on stream i
        -> concatenate -> x W_h (init N(0, 1/K), K = encoders[0].cluster_size)
        -> relu: batch norm + ReLU6; else: a bias, no activation (WILLOW `--netvlad_relu`)
        -> gating: Context Gating y = x * sigmoid(BN(x W)).

    Their best single model (NetVLAD, K = 256, hidden 1024) used `relu=False, gating=True`.

    Args:
        encoders: one encoder layer per stream (`NetVLAD`, `NetRVLAD`, `NetFV`, `SoftDBoW`, or their configs),
            e.g. NetVLAD(K) for rgb and NetVLAD(K // 2) for audio.
        feature_sizes: widths of the streams, in input order; they must add up to D.
        hidden_size: int, output width (flags `netvlad_hidden_size`, `fv_hidden_size`, `dbof_hidden_size`).
        add_batch_norm: bool, the input and hidden batch norms (slim defaults: momentum 0.999, epsilon 1e-3).
        relu: bool, see above (`--netvlad_relu`, `--fv_relu`, `--dbof_relu`; default True as WILLOW's flags).
        gating: bool, Context Gating after the projection (`--gating`).
        sample_frames: int, frames sampled per video while training (flag `iterations`; 0: no sampling).
            Evaluation always uses every valid frame (the original sampled at evaluation too).
        sample_random_frames: bool, independent frames (True) or a run of consecutive frames.
        seed: int or None, seed of the sampling.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int. Output: (B, hidden_size); `output_dim(D) = hidden_size`.
    Mask: padded frames are never sampled, get zero cluster assignments and stay out of the batch-norm statistics;
    a 0-frame video gives a finite output (its encodings are zeros).
    """

    def __init__(self, encoders, feature_sizes=(1024, 128), hidden_size=1024, add_batch_norm=True, relu=True,
                 gating=False, sample_frames=0, sample_random_frames=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.encoders = [keras.saving.deserialize_keras_object(e) if isinstance(e, dict) else e for e in encoders]
        self.feature_sizes = [int(size) for size in feature_sizes]
        if len(self.encoders) != len(self.feature_sizes):
            raise ValueError(f"{len(self.encoders)} encoders for {len(self.feature_sizes)} feature streams")
        self.hidden_size = hidden_size
        self.add_batch_norm = add_batch_norm
        self.relu = relu
        self.gating = gating
        self.sample_frames = sample_frames
        self.sample_random_frames = sample_random_frames
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        bn = dict(SLIM_BN, dtype=self.dtype_policy)
        self.input_bn = keras.layers.BatchNormalization(name="input_bn", **bn) if add_batch_norm else None
        self.hidden_bn = (keras.layers.BatchNormalization(name="hidden1_bn", **bn)
                          if add_batch_norm and relu else None)
        self.context_gating = ContextGating(add_batch_norm=add_batch_norm, dtype=self.dtype_policy,
                                           name="context_gating") if gating else None

    def build(self, frames_shape):
        if sum(self.feature_sizes) != frames_shape[-1]:
            raise ValueError(f"feature_sizes {self.feature_sizes} do not add up to the frame width {frames_shape[-1]}")
        if self.input_bn is not None:
            self.input_bn.build((None, None, frames_shape[-1]))
        for encoder, size in zip(self.encoders, self.feature_sizes):
            if not encoder.built:  # deserialized encoders come built
                encoder.build((None, None, size))
        encoded = sum(e.output_dim(size) for e, size in zip(self.encoders, self.feature_sizes))
        self.hidden_weights = self.add_weight(
            name="hidden1_weights", shape=(encoded, self.hidden_size),
            initializer=keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(self.encoders[0].cluster_size)))
        if self.hidden_bn is not None:
            self.hidden_bn.build((None, self.hidden_size))
        else:
            self.hidden_biases = self.add_weight(name="hidden1_biases", shape=(self.hidden_size,),
                                                 initializer=keras.initializers.RandomNormal(stddev=0.01))
        if self.context_gating is not None:
            self.context_gating.build((None, self.hidden_size))

    def call(self, frames, num_frames, training=None):
        mask, x = frames_to_pool(frames, num_frames, self.sample_frames, self.sample_random_frames, training,
                                 seed=self.seed_generator)
        if self.input_bn is not None:
            x = self.input_bn(x, training=training, mask=mask)
        encoded, start = [], 0
        for encoder, size in zip(self.encoders, self.feature_sizes):
            encoded.append(encoder(x[..., start:start + size], mask, training=training))
            start += size
        h = ops.matmul(ops.concatenate(encoded, axis=-1), ops.cast(self.hidden_weights, x.dtype))
        if self.hidden_bn is not None:
            h = self.hidden_bn(h, training=training)
        else:
            h = h + ops.cast(self.hidden_biases, h.dtype)
        if self.relu:
            h = ops.relu6(h)
        if self.context_gating is not None:
            h = self.context_gating(h, training=training)
        return h

    def output_dim(self, input_dim):
        return self.hidden_size

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoders": [keras.saving.serialize_keras_object(e) for e in self.encoders],
            "feature_sizes": self.feature_sizes,
            "hidden_size": self.hidden_size,
            "add_batch_norm": self.add_batch_norm,
            "relu": self.relu,
            "gating": self.gating,
            "sample_frames": self.sample_frames,
            "sample_random_frames": self.sample_random_frames,
            "seed": self.seed,
        })
        return config
