"""Analytic FLOP counts of the models the benchmarks time (no TensorFlow import; used on the GPU machine too).

Only matrix products are counted (2 FLOPs per multiply-add): they are > 99% of the arithmetic of these models;
element-wise ops (sigmoids, softmax, gates of the LSTM cell, the loss) are left out. A training step costs 3x the
forward products: the forward product, and in the backward pass one product for the gradient of the input and one
for the gradient of the weights, each the same size.
"""

TRAIN_FACTOR = 3


def dense(d_in, d_out):
    return 2 * d_in * d_out


def logistic(d, num_classes):
    return dense(d, num_classes)


def moe(d, num_classes, num_mixtures, hidden_size=None):
    """One-layer MoE: gates d x C(E+1) (no bias) and experts d x CE (yt8m_tf.classifiers.MoE)."""
    if hidden_size:
        return (2 * dense(d, hidden_size) + dense(hidden_size, num_classes * (num_mixtures + 1))
                + dense(hidden_size, num_classes * num_mixtures))
    return dense(d, num_classes * (num_mixtures + 1)) + dense(d, num_classes * num_mixtures)


def mlp(d, num_classes, hidden_sizes):
    flops, width = 0, d
    for h in hidden_sizes:
        flops += dense(width, h)
        width = h
    return flops + dense(width, num_classes)


def lstm(input_dim, units, steps):
    """Per example, one layer over `steps` time steps: x_t W (D x 4U) and s_{t-1} U (U x 4U) per step. Every step
    of the padded length runs (masked steps still compute), so `steps` is the padded T."""
    return steps * (dense(input_dim, 4 * units) + dense(units, 4 * units))


def lstm_m_o_moe(input_dim, units, steps, num_classes, num_mixtures):
    """The paper's final model: LSTM-M-O (width 3U + D) + MoE."""
    return lstm(input_dim, units, steps) + moe(3 * units + input_dim, num_classes, num_mixtures)
