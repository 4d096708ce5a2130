"""The starter code's L2 weight penalty, expressed as a Keras regulariser.

`slim.l2_regularizer(scale)` (used by every classifier in google/youtube-8m and seilna/youtube-8m) adds
`scale * tf.nn.l2_loss(w) = scale * sum(w**2) / 2`, while `keras.regularizers.L2(l2)` adds `l2 * sum(w**2)`.
`slim_l2(l2_penalty)` halves the factor so that `sum(model.losses)` equals the starter's
`tf.losses.get_regularization_losses()` sum, which the trainer scales by `--regularization_penalty`.
"""

import keras


def slim_l2(l2_penalty):
    """`keras.regularizers.L2` equal to `slim.l2_regularizer(l2_penalty)`; None when the penalty is 0."""
    if not l2_penalty:
        return None
    return keras.regularizers.L2(float(l2_penalty) / 2.0)
