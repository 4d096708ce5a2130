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


def netvlad_stream(feature_size, clusters, frames):
    """One WILLOW NetVLAD stream over `frames` frames: the assignment logits x W (D x K) and the aggregation
    sum_t a_k(x_t) x_t (K x D per frame); the centre residuals and the normalisations are element-wise."""
    return frames * (dense(feature_size, clusters) + dense(clusters, feature_size))


def willow_netvlad_moe(feature_sizes, clusters, hidden, frames, num_classes, num_mixtures, gating=True,
                       prob_gating=True):
    """WILLOW's gated NetVLAD (`willow/netvlad-gated`): streams with K and K/2 clusters, the hidden projection of
    the sum_i D_i K_i encodings, Context Gating (H x H), MoE and its probability gating (C x C)."""
    streams = [(size, clusters if i == 0 else clusters // 2) for i, size in enumerate(feature_sizes)]
    flops = sum(netvlad_stream(size, k, frames) for size, k in streams)
    flops += dense(sum(size * k for size, k in streams), hidden)
    flops += dense(hidden, hidden) if gating else 0
    flops += moe(hidden, num_classes, num_mixtures)
    return flops + (dense(num_classes, num_classes) if prob_gating else 0)


def nextvlad_stream(feature_size, clusters, groups, expansion, frames):
    """One NeXtVLAD stream over `frames` frames: expansion N x lambda N, group attention lambda N x G, assignment
    logits lambda N x G K, and the aggregation over groups and clusters (G K x lambda N / G per frame)."""
    expanded = expansion * feature_size
    return frames * (dense(feature_size, expanded) + dense(expanded, groups) + dense(expanded, groups * clusters)
                     + dense(groups * clusters, expanded // groups))


def nextvlad_logistic(feature_sizes, clusters, groups, expansion, hidden, reduction, frames, num_classes):
    """The NeXtVLAD model (`nextvlad/single`): streams with (K, G) and (K/2, G/2), the hidden projection, the SE
    Context Gating (2 H^2 / r) and the logistic classifier."""
    streams = [(size, clusters, groups) if i == 0 else (size, clusters // 2, groups // 2)
               for i, size in enumerate(feature_sizes)]
    flops = sum(nextvlad_stream(size, k, g, expansion, frames) for size, k, g in streams)
    encoded = sum(expansion * size // g * k for size, k, g in streams)
    return (flops + dense(encoded, hidden) + 2 * dense(hidden, hidden // reduction)
            + logistic(hidden, num_classes))
