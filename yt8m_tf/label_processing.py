"""Label processing layer C (paper 2.4, Eq. 18-20): mixes the class scores through a label-correlation matrix.

Convention: row i of a correlation matrix is the TARGET class, so `(M O_h)[i] = sum_j M[i, j] O_h[j]`
(Eq. 20 read with column vectors); for a batch (B, C) this is `O_h @ M^T`. The original code
(seilna/youtube-8m video_level_models.py `MoeWithLabelCorelationModel`) wrote `x @ M` with M[source, target];
`normalize_correlation` returns its matrix transposed into this convention.
"""

import os
import warnings

import keras
import numpy as np
from keras import ops


def normalize_correlation(cooccurrence, method="seilna"):
    """Label co-occurrence counts (C, C) -> a correlation matrix M_c (C, C) in the row = target convention.

    The paper (Eq. 19) only says M_c[i, j] grows with how often labels i and j appear in the same video.
    Methods:
        "seilna": the original code's final ("penalized corelation") normalisation. The diagonal is replaced by
            the row mean, then every entry is centred by and divided by its class's row mean / row sum, which
            for symmetric counts gives `M[i, j] = (N[i, j] - mean_k N[i, k]) / sum_k N[i, k]` (rows sum to ~0,
            entries can be negative). Transposed from the original `x @ M` layout. Zero rows give zeros.
        "row": row-stochastic, `M[i, j] = N[i, j] / sum_k N[i, k]` (diagonal kept), so `M O_h` is a weighted
            average of probabilities and stays in [0, 1].
    """
    counts = np.asarray(cooccurrence, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"cooccurrence must be a square (C, C) matrix, got shape {counts.shape}")
    if method == "row":
        sums = counts.sum(axis=1, keepdims=True)
        return np.where(sums > 0, counts / np.where(sums > 0, sums, 1.0), 0.0).astype(np.float32)
    if method == "seilna":
        m = counts.copy()
        np.fill_diagonal(m, counts.mean(axis=1))
        mean, total = m.mean(axis=1), m.sum(axis=1)
        # original: (m - mean) / total with numpy broadcasting over the LAST axis (column j uses row j's stats)
        original = np.where(total > 0, (m - mean) / np.where(total > 0, total, 1.0), 0.0)
        return original.T.astype(np.float32)
    raise ValueError(f"unknown method {method!r}; valid: 'seilna', 'row'")


@keras.saving.register_keras_serializable(package="yt8m_tf")
class LabelProcessing(keras.layers.Layer):
    """`O_c = alpha O_h + beta M_c O_h + gamma M'_c O_h` (Eq. 20).

    M_c is a fixed (non-trainable) weight, M'_c a trainable weight initialised to M_c. Both are (C, C) layer
    weights, so a saved `.keras` file holds them and `get_config()` stays small; their values come from
    `set_correlation(matrix)` or from `correlation_path` (a `.npy` file loaded with `allow_pickle=False` in
    `build`; when that file is missing at build time, e.g. when reloading a saved model on another machine,
    the matrices start at zero with a warning, and the saved weights then overwrite them).
    Only the matrices in use are allocated: M_c when beta != 0, M'_c when gamma != 0; with beta = gamma = 0
    the layer holds no weights and returns `alpha * O_h` (the identity for alpha = 1).

    The output is NOT clipped: Eq. 20 can leave [0, 1] (alpha = 1 and beta > 0 with a row-stochastic M_c, or a
    matrix with negative entries). The original code applied the correlation to the MoE experts' logits before
    the sigmoid, as a convex mix `(1 - gamma) x + gamma x M`, so it never needed clipping; here Eq. 20 acts on
    probabilities as the paper states, `normalize_weights=True` divides by (alpha + beta + gamma) to keep the
    mix convex, and the losses clip their input to [0, 1] (see `yt8m_tf.losses`). GAP only reads the ranking,
    so scores outside [0, 1] are harmless at evaluation.

    The layer defaults to the float32 dtype policy so that probabilities are never rounded to bfloat16.

    Args:
        num_classes: int, number of classes C.
        alpha: float, weight of O_h. Default 1.0.
        beta: float, weight of the fixed M_c O_h. Default 0.0.
        gamma: float, weight of the trainable M'_c O_h. Default 0.0.
        correlation_path: str or None, `.npy` file with M_c (C, C), row = target class. Default None.
        normalize_weights: bool, divide the output by (alpha + beta + gamma). Default False (Eq. 20 as written).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: (batch, num_classes) probabilities.
    Output shape: (batch, num_classes) float32 scores.
    """

    def __init__(self, num_classes, alpha=1.0, beta=0.0, gamma=0.0, correlation_path=None, normalize_weights=False,
                 **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.alpha = alpha
        self.beta = beta
        self.gamma = gamma
        self.correlation_path = correlation_path
        self.normalize_weights = normalize_weights
        self.correlation = None
        self.trainable_correlation = None

    def build(self, input_shape=None):
        shape = (self.num_classes, self.num_classes)
        if self.beta:
            self.correlation = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="correlation")
        if self.gamma:
            self.trainable_correlation = self.add_weight(shape=shape, initializer="zeros", trainable=True,
                                                         name="trainable_correlation")
        if self.correlation_path is not None and (self.beta or self.gamma):
            if os.path.exists(self.correlation_path):
                self._assign(np.load(self.correlation_path, allow_pickle=False))
            else:
                warnings.warn(f"LabelProcessing: correlation_path {self.correlation_path!r} not found; the "
                              "correlation matrices start at zero (expected only when saved weights follow).")
        self.built = True

    def set_correlation(self, matrix):
        """Set M_c and (re)initialise M'_c to it; `matrix` is (C, C), row = target class."""
        if not self.built:
            self.build((None, self.num_classes))
        self._assign(matrix)

    def _assign(self, matrix):
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.shape != (self.num_classes, self.num_classes):
            raise ValueError(f"correlation matrix must be {(self.num_classes, self.num_classes)}, got {matrix.shape}")
        for weight in (self.correlation, self.trainable_correlation):
            if weight is not None:
                weight.assign(matrix)

    def call(self, probabilities):
        scores = ops.cast(probabilities, "float32")
        output = scores if self.alpha == 1.0 else self.alpha * scores
        if self.correlation is not None:
            output = output + self.beta * ops.matmul(scores, ops.transpose(self.correlation))
        if self.trainable_correlation is not None:
            output = output + self.gamma * ops.matmul(scores, ops.transpose(self.trainable_correlation))
        if self.normalize_weights:
            output = output / float(self.alpha + self.beta + self.gamma)
        return output

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "alpha": self.alpha,
            "beta": self.beta,
            "gamma": self.gamma,
            "correlation_path": self.correlation_path,
            "normalize_weights": self.normalize_weights,
        })
        return config
