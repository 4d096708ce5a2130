"""Loss functions L (paper 2.5): per-example losses (B,) that the trainer averages over the global batch.

Every function takes `(labels, predictions)` (multi-hot labels and probabilities, both (B, C)) and returns the
per-example loss (B,), i.e. the starter `calculate_loss` without its final `reduce_mean` over the batch, so the
distributed loop can call `tf.nn.compute_average_loss(per_example, global_batch_size)`. The per-class losses also
take `label_weights` (B, C): each (example, class) term is multiplied by its weight before the sum over classes,
as the 2019 starter code's CrossEntropyLoss did for segment ratings (weight 1 at the rated classes, 0 elsewhere). They are computed in
float32 whatever the input dtype. `LOSSES` maps the starter's `--label_loss` names (plus the paper's
`PseudoHuberLoss`) to these functions and `get_loss(name, **kwargs)` binds their keyword arguments.

The L2 weight penalties are not a label loss: the classifiers add them to `model.losses` with the starter's
`slim.l2_regularizer` scale (see `yt8m_tf.classifiers.regularizers`), and the trainer adds
`regularization_penalty * sum(model.losses)` as the starter `train.py` does.

The center loss (Eq. 21) is a layer because it owns the class centres: `yt8m_tf.center_loss`, which needs
TensorFlow (tf.distribute); this module does not, so the losses also run on the JAX backend (bench/gpu_step.py).
"""

import functools
import inspect

import keras
from keras import ops


def smooth_labels(labels, label_smoothing):
    """Binary label smoothing (as keras.losses.BinaryCrossentropy): y -> y (1 - s) + s / 2."""
    y = ops.cast(labels, "float32")
    if not label_smoothing:
        return y
    return y * (1.0 - label_smoothing) + 0.5 * label_smoothing


def _elementwise_cross_entropy(labels, predictions, epsilon, label_smoothing=0.0, focal_gamma_neg=0.0):
    y = smooth_labels(labels, label_smoothing)
    p = ops.clip(ops.cast(predictions, "float32"), 0.0, 1.0)
    negative = ops.log(1.0 - p + epsilon)
    if focal_gamma_neg:
        negative = ops.power(p, focal_gamma_neg) * negative
    return -(y * ops.log(p + epsilon) + (1.0 - y) * negative)


def _class_sum(terms, label_weights):
    """sum over classes of the (B, C) per-class terms, each weighted by `label_weights` when given."""
    if label_weights is not None:
        terms = terms * ops.cast(label_weights, "float32")
    return ops.sum(terms, axis=-1)


@keras.saving.register_keras_serializable(package="yt8m_tf")
def cross_entropy(labels, predictions, epsilon=1e-5, label_smoothing=0.0, focal_gamma_neg=0.0, label_weights=None):
    """Starter `CrossEntropyLoss`: `-sum_c [y log(p + eps) + (1 - y) log(1 - p + eps)]` per example.

    `label_smoothing` s > 0 replaces y by y (1 - s) + s / 2 (`--label_smoothing`; 0 = the starter's loss).
    `focal_gamma_neg` g > 0 weights each negative term by p^g: the asymmetric focusing of Ridnik et al. (2021,
    "Asymmetric Loss for Multi-Label Classification", gamma+ = 0, no probability shift), which lets the thousands
    of easy negatives of a video fade while its positives keep their full weight (`--focal_gamma_neg`; 0 = the
    starter's loss).

    epsilon 1e-5 is the starter's value since Feb 2017 (`10e-6` in seilna/youtube-8m losses.py, `1e-5` in
    google/youtube-8m). Predictions are clipped to [0, 1] first (a no-op for sigmoid / MoE outputs) so the
    unclipped label-processing scores of Eq. 20 cannot produce NaN.
    """
    return _class_sum(_elementwise_cross_entropy(labels, predictions, epsilon, label_smoothing, focal_gamma_neg),
                      label_weights)


@keras.saving.register_keras_serializable(package="yt8m_tf")
def pseudo_huber_cross_entropy(labels, predictions, delta=0.5, epsilon=1e-5, label_smoothing=0.0,
                               label_weights=None):
    """Pseudo-Huber loss on the cross entropy (Eq. 23): `delta^2 (sqrt(1 + (L_CE / delta)^2) - 1)`.

    As in the original code (seilna/youtube-8m losses.py `Huber_CrossEntropyLoss`), L_CE is the PER-CLASS
    cross entropy: the pseudo-Huber function is applied to each (example, class) term and the results are
    summed over classes. Each term is ~L_CE^2 / 2 when L_CE << delta and ~delta * L_CE when L_CE >> delta.
    delta defaults to 0.5, the original `--delta` flag default and the paper's best value (Table 4).
    Computed as the algebraically equal `L_CE^2 / (sqrt(1 + (L_CE/delta)^2) + 1)`, which keeps float32
    precision for the many tiny per-class terms where `sqrt(1 + r^2) - 1` would cancel. `label_smoothing` as in
    `cross_entropy`.
    """
    ce = _elementwise_cross_entropy(labels, predictions, epsilon, label_smoothing)
    return _class_sum(ops.square(ce) / (ops.sqrt(1.0 + ops.square(ce / delta)) + 1.0), label_weights)


@keras.saving.register_keras_serializable(package="yt8m_tf")
def hinge(labels, predictions, b=1.0, label_weights=None):
    """Starter `HingeLoss`: `sum_c max(0, b - (2y - 1) p)` per example (predictions used as given)."""
    y = ops.cast(labels, "float32")
    p = ops.cast(predictions, "float32")
    return _class_sum(ops.maximum(0.0, b - (2.0 * y - 1.0) * p), label_weights)


@keras.saving.register_keras_serializable(package="yt8m_tf")
def softmax(labels, predictions, epsilon=1e-7, label_weights=None):
    """Starter `SoftmaxLoss`: `-sum_c (y_c / max(sum y, eps)) log softmax(predictions)_c` per example.

    The starter applies the softmax to whatever the model outputs (probabilities here), and L1-normalises the
    labels with the floor `epsilon = 10e-8` (= 1e-7), so a video without labels gives 0. `log_softmax` replaces
    `log(softmax(.))` (same value, no underflow). It has no per-class terms that `label_weights` could weight
    (a rated negative class adds nothing to it): refused with weights.
    """
    if label_weights is not None:
        raise ValueError("SoftmaxLoss cannot weight classes (--segment_labels): use CrossEntropyLoss, "
                         "PseudoHuberLoss or HingeLoss")
    y = ops.cast(labels, "float32")
    p = ops.cast(predictions, "float32")
    normalized = y / ops.maximum(ops.sum(y, axis=-1, keepdims=True), epsilon)
    return -ops.sum(normalized * ops.log_softmax(p, axis=-1), axis=-1)


LOSSES = {
    "CrossEntropyLoss": cross_entropy,
    "HingeLoss": hinge,
    "SoftmaxLoss": softmax,
    "PseudoHuberLoss": pseudo_huber_cross_entropy,
}


def get_loss(name, **kwargs):
    """`LOSSES[name]` with `kwargs` bound: a callable `(labels, predictions) -> (B,)`."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}")
    fn = LOSSES[name]
    try:
        inspect.signature(fn).bind(None, None, **kwargs)
    except TypeError as error:
        raise ValueError(f"bad arguments {kwargs} for loss {name!r}: {error}") from None
    return functools.partial(fn, **kwargs) if kwargs else fn


def online_distillation_loss(mixture_logits, member_logits, temperature=3.0, weight=9.0):
    """The online knowledge distillation term of the NeXtVLAD mixture (Lin et al. 2018 section 3.4), per example.

    With the class-softmax "rank soft predictions" at temperature T (Eq. 15),
        p_e(c) = softmax_c(z_e / T),  p_m(c) = softmax_c(z_m / T),
    returns weight * sum_m KL(p_e || p_m) = weight * sum_m sum_c p_e(c) log(p_e(c) / p_m(c))  (Eq. 14), shape (B,).
    Eq. 16 weights the KL sum by T^2: weight 9 at T = 3 (the paper's final model; the code's `--cl_lambda=9`,
    `--cl_temperature=3`). Computed with log-softmax in float32 (the original added 1e-8 inside the logs).
    Gradients reach both the members and the mixture (the gate included), as in the original code (no
    stop-gradient on p_e).

    Args:
        mixture_logits: (B, C) z_e, the mixture's logits.
        member_logits: (B, M, C) z_m, each member's logits.
        temperature: float T.
        weight: float, the factor of the KL sum.
    """
    log_mixture = ops.log_softmax(ops.cast(mixture_logits, "float32") / temperature, axis=-1)[:, None, :]
    log_members = ops.log_softmax(ops.cast(member_logits, "float32") / temperature, axis=-1)
    kl = ops.sum(ops.exp(log_mixture) * (log_mixture - log_members), axis=-1)  # (B, M)
    return weight * ops.sum(kl, axis=-1)
