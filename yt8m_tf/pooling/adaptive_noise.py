"""Adaptive Noise pooling, paper section 2.2.5 (Eq. 11-12)."""

import keras
import numpy as np
from keras import ops

from yt8m_tf.masking import masked_sum
from yt8m_tf.pooling.utils import l2_normalize, valid_frames


@keras.saving.register_keras_serializable(package="yt8m_tf")
class AdaptiveNoisePooling(keras.layers.Layer):
    """I_t <- I_t + gamma Z, Z ~ N(0, I) (Eq. 11), gamma = (1/n) sum_i 1/S(y_i) (Eq. 12), then O_g = sum_t I_t.

    n is the number of labels of the video and S(y) the number of training videos of class y, so videos of rare
    classes get more noise. Noise is drawn per frame and per feature, only at training time and only when `labels`
    are given; evaluation (training=False) or labels=None is a plain sum over valid frames. `scale` multiplies gamma.

    Magnitude of the paper's gamma (2018 vocabulary, /work/shared/data/yt8m/vocabulary.csv, column TrainVideoCount,
    3862 classes, no class with S = 0): S ranges 123 .. 788,288 (median 440.5), so 1/S ranges 1.3e-6 .. 8.1e-3
    (median 2.3e-3, mean 2.7e-3). Per video (mean of 1/S over its labels, 5,889 real v2 validation videos with
    3 labels on average): gamma median 7.6e-5, mean 3.3e-4, 5th percentile 3.1e-6, 95th percentile 1.5e-3,
    max 7.4e-3. Frame features are dequantized 8-bit values in [-2, 2] with a typical magnitude of 0.3-0.5 per
    element, so with scale=1 the noise is 1e-2 to 1e-5 of the signal: negligible, consistent with the paper's finding
    that adaptive noise changed nothing (GAP 0.782, the same as position encoding). A visible effect needs a scale
    of about 1e2-1e3. (The paper used the 2017 vocabulary, 4,716 classes, quoting S from 101 (Air Gear) to about
    800,000 (Car): the same range.)

    Args:
        num_classes: int, C.
        class_counts: list of C numbers S(y), or None. They are stored in a non-trainable float32 weight
            `counts` (named "class_counts"; saved with the model, so a .keras file is self-contained) and are not
            part of `get_config()` (that stays small). When None the weight starts at ones and must be loaded or
            assigned (`layer.counts.assign(counts)` after build). Counts are clipped to >= 1, so a class with
            S = 0 gives 1/S = 1, not inf.
        scale: float, multiplies gamma (1.0 = the paper).
        l2_normalize: bool, L2-normalise O_g. Not in the paper (the code this section refers to, position
            encoding, normalised its sum). Default False.
        seed: int or None, seed of the noise.

    Input: `frames` (B, T, D) float, `num_frames` (B,) int, `labels` (B, C) multi-hot float or None.
    Output: (B, D); `output_dim(D) = D`.
    Mask: padded frames are excluded from the sum (noise on them is discarded too); a 0-frame video gives zeros; a
        video without labels gets gamma = 0.
    """

    uses_labels = True

    def __init__(self, num_classes, class_counts=None, scale=1.0, l2_normalize=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        if class_counts is not None and len(class_counts) != num_classes:
            raise ValueError(f"class_counts has {len(class_counts)} entries, expected num_classes={num_classes}")
        self.num_classes = num_classes
        self.class_counts = None if class_counts is None else [float(c) for c in class_counts]
        self.scale = scale
        self.l2_normalize = l2_normalize
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, frames_shape):
        counts = self.class_counts

        def initializer(shape, dtype=None):
            if counts is None:
                return ops.ones(shape, dtype=dtype)
            return ops.convert_to_tensor(np.asarray(counts, np.float32).reshape(shape), dtype=dtype)

        self.counts = self.add_weight(name="class_counts", shape=(self.num_classes,), initializer=initializer,
                                      trainable=False, dtype="float32", autocast=False)

    def noise_std(self, labels):
        """(B, C) multi-hot labels -> (B,) gamma of Eq. 12 (before `scale`)."""
        labels = ops.cast(labels, "float32")
        inverse = 1.0 / ops.maximum(ops.cast(self.counts, "float32"), 1.0)
        num_labels = ops.sum(labels, axis=-1)
        return ops.sum(labels * inverse, axis=-1) / ops.maximum(num_labels, 1.0)

    def call(self, frames, num_frames, labels=None, training=None):
        mask, frames = valid_frames(frames, num_frames)
        if training and labels is not None and self.scale:
            gamma = self.scale * self.noise_std(labels)
            noise = keras.random.normal(ops.shape(frames), seed=self.seed_generator, dtype="float32")
            frames = frames + ops.cast(ops.reshape(gamma, (-1, 1, 1)) * noise, frames.dtype)
        pooled = masked_sum(frames, mask)
        return l2_normalize(pooled) if self.l2_normalize else pooled

    def output_dim(self, input_dim):
        return input_dim

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "scale": self.scale,
                       "l2_normalize": self.l2_normalize, "seed": self.seed})
        return config
