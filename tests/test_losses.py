"""Losses L (paper 2.5): starter formulas by hand, pseudo-Huber limits, registry, multi-label center loss."""

import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_testing import run_layer_test
from yt8m_tf import losses
from yt8m_tf.center_loss import MultiLabelCenterLoss
from yt8m_tf.losses import LOSSES, get_loss

LABELS = np.array([[1.0, 0.0, 0.0],
                   [0.0, 1.0, 1.0]], np.float32)
PREDS = np.array([[0.9, 0.2, 0.1],
                  [0.3, 0.6, 0.8]], np.float32)
EPS = 1e-5


def test_cross_entropy_by_hand():
    expected = [-(math.log(0.9 + EPS) + math.log(0.8 + EPS) + math.log(0.9 + EPS)),
                -(math.log(0.7 + EPS) + math.log(0.6 + EPS) + math.log(0.8 + EPS))]
    np.testing.assert_allclose(np.asarray(losses.cross_entropy(LABELS, PREDS)), expected, rtol=1e-6)
    # scores outside [0, 1] (label processing, Eq. 20) are clipped, never NaN
    out = np.asarray(losses.cross_entropy(LABELS, PREDS + 0.5))
    assert np.all(np.isfinite(out))


def test_pseudo_huber_per_class_terms_and_limits():
    def ce(p, y):
        return -(y * math.log(p + EPS) + (1 - y) * math.log(1 - p + EPS))

    delta = 0.5
    expected = [sum(delta ** 2 * (math.sqrt(1 + (ce(p, y) / delta) ** 2) - 1) for p, y in zip(ps, ys))
                for ps, ys in zip(PREDS, LABELS)]
    got = np.asarray(losses.pseudo_huber_cross_entropy(LABELS, PREDS, delta=delta))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    per_example_ce = np.asarray(losses.cross_entropy(LABELS, PREDS))
    assert np.all(got < delta ** 2 * (np.sqrt(1 + (per_example_ce / delta) ** 2) - 1))  # not Huber of the sum

    one = np.ones((1, 1), np.float32)
    small = float(losses.pseudo_huber_cross_entropy(one, np.full((1, 1), 0.999, np.float32), delta=1.0)[0])
    small_ce = float(losses.cross_entropy(one, np.full((1, 1), 0.999, np.float32))[0])
    np.testing.assert_allclose(small, small_ce ** 2 / 2, rtol=1e-3)
    for delta in (0.5, 1.0):
        large = float(losses.pseudo_huber_cross_entropy(one, np.zeros((1, 1), np.float32), delta=delta)[0])
        large_ce = float(losses.cross_entropy(one, np.zeros((1, 1), np.float32))[0])  # -log(1e-5) = 11.5
        np.testing.assert_allclose(large, delta * large_ce - delta ** 2, rtol=1e-2)


def test_hinge_by_hand():
    # sign = 2y - 1; sum_c max(0, 1 - sign * p)
    expected = [(1 - 0.9) + (1 + 0.2) + (1 + 0.1), (1 + 0.3) + (1 - 0.6) + (1 - 0.8)]
    np.testing.assert_allclose(np.asarray(losses.hinge(LABELS, PREDS)), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(losses.hinge(LABELS, PREDS, b=0.0)), [0.2 + 0.1, 0.3], rtol=1e-6)


def test_softmax_by_hand():
    def log_softmax(row):
        return row - math.log(sum(math.exp(v) for v in row))

    row0, row1 = log_softmax(PREDS[0]), log_softmax(PREDS[1])
    expected = [-row0[0], -(0.5 * row1[1] + 0.5 * row1[2])]  # labels L1-normalised
    np.testing.assert_allclose(np.asarray(losses.softmax(LABELS, PREDS)), expected, rtol=1e-6)
    assert float(losses.softmax(np.zeros((1, 3), np.float32), PREDS[:1])[0]) == 0.0


def test_label_weights_keep_only_the_rated_terms_by_hand():
    # Segment ratings: only (example, class) pairs with weight 1 enter the sum (the 2019 starter's CrossEntropyLoss).
    weights = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], np.float32)
    np.testing.assert_allclose(np.asarray(losses.cross_entropy(LABELS, PREDS, label_weights=weights)),
                               [-math.log(0.8 + EPS), -(math.log(0.7 + EPS) + math.log(0.8 + EPS))], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(losses.hinge(LABELS, PREDS, label_weights=weights)),
                               [1 + 0.2, (1 + 0.3) + (1 - 0.8)], rtol=1e-6)
    terms = [-math.log(0.8 + EPS), -math.log(0.7 + EPS), -math.log(0.8 + EPS)]
    huber = [0.25 * (math.sqrt(1 + (t / 0.5) ** 2) - 1) for t in terms]
    np.testing.assert_allclose(np.asarray(losses.pseudo_huber_cross_entropy(LABELS, PREDS, label_weights=weights)),
                               [huber[0], huber[1] + huber[2]], rtol=1e-5)
    with pytest.raises(ValueError, match="SoftmaxLoss cannot weight classes"):
        losses.softmax(LABELS, PREDS, label_weights=weights)


def test_online_distillation_loss_by_hand():
    """NeXtVLAD Eq. 14-16 at T = 2: z / T = [0, ln 3] gives p = [1/4, 3/4]; [0, 0] gives [1/2, 1/2]."""
    ln3 = math.log(3.0)
    mixture = np.array([[0.0, 2 * ln3], [0.0, 0.0]], np.float32)  # (B=2, C=2)
    members = np.array([[[0.0, 0.0], [0.0, 2 * ln3], [2 * ln3, 0.0]],  # (B=2, M=3, C=2)
                        [[5.0, 5.0], [0.0, 0.0], [-1.0, -1.0]]], np.float32)  # all uniform: KL 0
    kl_uniform = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    kl_swapped = 0.25 * math.log(0.25 / 0.75) + 0.75 * math.log(0.75 / 0.25)
    expected = [9.0 * (kl_uniform + 0.0 + kl_swapped), 0.0]
    out = losses.online_distillation_loss(mixture, members, temperature=2.0, weight=9.0)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-6)
    # Gradients reach the mixture's logits too (no stop-gradient on p_e, as the original code).
    mixture_var = tf.Variable(mixture)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(losses.online_distillation_loss(mixture_var, members, temperature=2.0))
    assert np.abs(np.asarray(tape.gradient(total, mixture_var))[0]).max() > 0.01


def test_registry_and_get_loss():
    assert set(LOSSES) == {"CrossEntropyLoss", "HingeLoss", "SoftmaxLoss", "PseudoHuberLoss"}
    huber = get_loss("PseudoHuberLoss", delta=2.0)
    np.testing.assert_allclose(huber(LABELS, PREDS), losses.pseudo_huber_cross_entropy(LABELS, PREDS, delta=2.0))
    assert get_loss("CrossEntropyLoss") is losses.cross_entropy
    with pytest.raises(ValueError, match="CrossEntropyLoss, HingeLoss, PseudoHuberLoss, SoftmaxLoss"):
        get_loss("Huber")
    with pytest.raises(ValueError, match="bad arguments"):
        get_loss("HingeLoss", delta=1.0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_per_example_float32_from_bfloat16(name):
    out = LOSSES[name](tf.cast(LABELS, tf.bfloat16), tf.cast(PREDS, tf.bfloat16))
    assert tuple(out.shape) == (2,) and keras.backend.standardize_dtype(out.dtype) == "float32"


# ---- multi-label center loss (Eq. 21) ----------------------------------------------------------------------

CENTERS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
EMB = np.array([[1.0, 1.0], [0.0, 0.0], [5.0, 5.0]], np.float32)
MULTI_HOT = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], np.float32)


def _center_layer():
    layer = MultiLabelCenterLoss(3, center_alpha=0.5)
    layer.build((None, 2))
    layer.centers.assign(CENTERS)
    return layer


def test_center_loss_layer_contract():
    run_layer_test(MultiLabelCenterLoss, {"num_classes": 3, "center_alpha": 0.5}, (EMB, MULTI_HOT), (3,),
                   expect_gradients=False)


def test_center_loss_value_by_hand():
    layer = _center_layer()
    # video 0: (||(1,1)-(1,0)||^2 + ||(1,1)-(0,1)||^2) / 2 = 1; video 1: ||(0,0)-(1,1)||^2 = 2; video 2: no labels
    np.testing.assert_allclose(np.asarray(layer(EMB, MULTI_HOT)), [1.0, 2.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(layer.centers), CENTERS)  # no update outside training
    emb = tf.constant(EMB)
    with tf.GradientTape() as tape:
        tape.watch(emb)
        loss = tf.reduce_sum(layer(emb, MULTI_HOT))
    # d/de (1/N) sum_k ||e - c_k||^2 = 2 (e - mean_k c_k)
    np.testing.assert_allclose(np.asarray(tape.gradient(loss, emb)), [[1.0, 1.0], [-2.0, -2.0], [0.0, 0.0]])


def test_center_update_rule_by_hand():
    layer = _center_layer()
    loss = layer(EMB, MULTI_HOT, training=True)
    np.testing.assert_allclose(np.asarray(loss), [1.0, 2.0, 0.0], rtol=1e-6)  # loss read before the update
    # delta_j = sum_i y_ij (c_j - e_i) / (1 + n_j); c_j -= 0.5 delta_j
    # c0: ((1,0)-(1,1))/2 = (0,-0.5) -> (1, 0.25); c1: ((0,1)-(1,1))/2 -> (0.25, 1); c2: ((1,1)-(0,0))/2 -> (0.75, 0.75)
    np.testing.assert_allclose(np.asarray(layer.centers), [[1.0, 0.25], [0.25, 1.0], [0.75, 0.75]], rtol=1e-6)


def test_center_loss_float32_under_mixed_bfloat16():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = MultiLabelCenterLoss(3)
        out = layer(tf.cast(EMB, tf.bfloat16), MULTI_HOT, training=True)
        assert layer.compute_dtype == "float32" and keras.backend.standardize_dtype(out.dtype) == "float32"
    finally:
        keras.config.set_dtype_policy("float32")


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from yt8m_tf.center_loss import MultiLabelCenterLoss
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 3)).astype("float32")
    labels = (rng.random((4, 5)) > 0.5).astype("float32")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        layer = MultiLabelCenterLoss(5)
        layer.build((None, 3))
    single = MultiLabelCenterLoss(5)
    single.build((None, 3))
    data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((emb, labels)).batch(4))

    @tf.function
    def step(batch):
        return strategy.run(lambda e, y: layer(e, y, training=True), args=batch)

    for _ in range(2):
        for batch in data:
            per_replica = strategy.experimental_local_results(step(batch))
        single_loss = single(emb, labels, training=True)
    np.testing.assert_allclose(np.concatenate(per_replica), single_loss, rtol=1e-5, atol=1e-6)
    replicas = strategy.experimental_local_results(layer.centers.value)
    assert len(replicas) == 2
    for value in replicas:  # every replica applied the same global-batch update
        np.testing.assert_allclose(value, single.centers.numpy(), rtol=1e-5, atol=1e-6)
    print("OK")
""")


def test_center_loss_under_mirrored_strategy():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=repo)
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
