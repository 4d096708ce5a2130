"""The recipe knobs of docs/QUALITY.md, checked by hand: output bias init (logistic, MoE experts, MLP), per-feature
input normalisation, Gaussian input noise, label smoothing, the k-NN memory head (writes, vote, dedupe, ring buffer,
checkpoint), get_config round trips, and that the `video-best` / `video-moe` presets build. The training runs that
produce the QUALITY.md numbers are bench/quality_video.py, not tests."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from yt8m_tf import flags as yt8m_flags, losses, presets, registry
from yt8m_tf.classifiers import MLP, Ensemble, Logistic, MoE
from yt8m_tf.classifiers.memory import KnnMemory
from yt8m_tf.model import FeatureNormalization, VideoClassifier
from yt8m_tf.training import optimization, step as step_lib, train_dir as train_dir_lib, trainer
from yt8m_tf.training.options import TrainOptions

RNG = np.random.default_rng(0)
LOG_PRIOR = math.log(1 / 1000)


def _model_settings(preset_name, **overrides):
    preset = presets.get_preset(preset_name)
    settings = yt8m_flags.default_model_settings(**{k: v for k, v in preset.items() if k in yt8m_flags.MODEL_FLAGS})
    settings.update(overrides)
    return settings


def _roundtrip(layer):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    return keras.saving.deserialize_keras_object(config)


# ---- output bias init -------------------------------------------------------------------------------------------
def test_output_bias_init_reaches_every_head():
    x = RNG.normal(size=(3, 6)).astype("float32")
    for name in ("LogisticModel", "MoeModel", "MlpModel"):
        settings = yt8m_flags.default_model_settings(model=name, feature_sizes="4,2", num_classes=7,
                                                     mlp_hidden_sizes="5", output_bias_init=LOG_PRIOR)
        model = registry.build_model(settings)
        biases = {v.path.rsplit("/", 2)[-2]: v.numpy() for v in model.weights if v.path.endswith("bias")
                  and ("logits" in v.path or "experts" in v.path)}
        assert biases, name
        for value in biases.values():
            np.testing.assert_allclose(value, LOG_PRIOR, rtol=1e-6)
        out = model({"video_matrix": np.zeros_like(x), "num_frames": np.ones(3, np.int32)})["predictions"].numpy()
        prior = 1 / (1 + math.exp(-LOG_PRIOR))
        expected = prior * 2 / 3 if name == "MoeModel" else prior  # MoE-2: 2 of 3 gates, uniform at x = 0
        np.testing.assert_allclose(out, expected, rtol=1e-4)


def test_starter_semantics_without_bias_init():
    settings = yt8m_flags.default_model_settings(model="MlpModel", feature_sizes="4,2", num_classes=7,
                                                 mlp_hidden_sizes="5")
    model = registry.build_model(settings)
    assert not any("logits/bias" in v.path for v in model.weights)  # the original NN has no output bias
    moe = registry.build_model(dict(settings, model="MoeModel"))
    np.testing.assert_array_equal([v.numpy() for v in moe.weights if v.path.endswith("experts/bias")][0], 0.0)


def test_moe_expert_bias_formula():
    layer = MoE(4, num_mixtures=3, expert_bias_initializer_value=-2.0)
    out = np.asarray(layer(np.zeros((2, 5), np.float32)))
    np.testing.assert_allclose(out, 3 / 4 / (1 + math.exp(2.0)), rtol=1e-5)


# ---- input normalisation ----------------------------------------------------------------------------------------
def test_feature_normalization_by_hand():
    x = RNG.normal(size=(4, 7)).astype("float32")
    x[1, 5:] = 0.0  # a zero block stays zero
    for method in ("l2", "l2_scaled"):
        out = np.asarray(FeatureNormalization([5, 2], method)(x))
        for start, stop in ((0, 5), (5, 7)):
            block = x[:, start:stop]
            norm = np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-6)
            scale = math.sqrt(stop - start) if method == "l2_scaled" else 1.0
            np.testing.assert_allclose(out[:, start:stop], block / norm * scale, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(out[1, 5:], 0.0)
    np.testing.assert_array_equal(np.asarray(FeatureNormalization([5, 2], "none")(x)), x)


def test_feature_normalization_frames_and_config():
    frames = RNG.normal(size=(2, 3, 6)).astype("float32")
    layer = FeatureNormalization([4, 2], "l2")
    out = np.asarray(layer(frames))
    np.testing.assert_allclose(np.linalg.norm(out[..., :4], axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out[..., 4:], axis=-1), 1.0, rtol=1e-5)
    clone = _roundtrip(layer)
    assert (clone.feature_sizes, clone.method) == ([4, 2], "l2")
    np.testing.assert_array_equal(np.asarray(clone(frames)), out)
    with pytest.raises(ValueError, match="unknown input normalization"):
        FeatureNormalization([4, 2], "zscore")


def test_model_applies_normalization_first_and_saves_it(tmp_path):
    settings = yt8m_flags.default_model_settings(model="LogisticModel", feature_sizes="4,2", num_classes=5,
                                                 input_normalization="l2")
    model = registry.build_model(settings)
    x = RNG.normal(size=(3, 6)).astype("float32")
    batch = {"video_matrix": x, "num_frames": np.ones(3, np.int32)}
    scaled = {"video_matrix": x * np.array([3, 3, 3, 3, 0.5, 0.5], np.float32), "num_frames": batch["num_frames"]}
    np.testing.assert_allclose(model(batch)["predictions"], model(scaled)["predictions"], rtol=1e-5)
    path = str(tmp_path / "m.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.input_normalization, FeatureNormalization)
    np.testing.assert_allclose(reloaded(batch)["predictions"], model(batch)["predictions"], rtol=1e-6)


# ---- Gaussian input noise, activation ----------------------------------------------------------------------------
def test_mlp_input_noise_only_when_training():
    layer = MLP(6, hidden_sizes=(5,), input_noise=0.5, activation="gelu", use_output_bias=True,
                output_bias_initializer_value=-1.0)
    x = RNG.normal(size=(64, 4)).astype("float32")
    layer(x)
    twin = MLP(6, hidden_sizes=(5,), activation="gelu", use_output_bias=True, output_bias_initializer_value=-1.0)
    twin(x)
    twin.set_weights(layer.get_weights())  # the same MLP without input noise
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), np.asarray(twin(x, training=True)), rtol=1e-6)
    assert not np.allclose(np.asarray(layer(x, training=True)), np.asarray(twin(x, training=True)), atol=1e-3)
    h = np.asarray(layer.features(x))
    np.testing.assert_allclose(np.asarray(layer.classify(h)), np.asarray(layer(x)), rtol=1e-6)
    clone = _roundtrip(layer)
    assert (clone.input_noise, clone.activation, clone.output_bias_initializer_value) == (0.5, "gelu", -1.0)


# ---- label smoothing --------------------------------------------------------------------------------------------
def test_label_smoothing_by_hand():
    y = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    p = np.array([[0.9, 0.2, 0.01], [0.3, 0.6, 0.99]], np.float32)
    s, eps = 0.1, 1e-5
    t = y * (1 - s) + s / 2
    ce = -(t * np.log(p + eps) + (1 - t) * np.log(1 - p + eps))
    np.testing.assert_allclose(losses.cross_entropy(y, p, label_smoothing=s), ce.sum(1), rtol=1e-5)
    huber = (0.5 ** 2 * (np.sqrt(1 + (ce / 0.5) ** 2) - 1)).sum(1)
    np.testing.assert_allclose(losses.pseudo_huber_cross_entropy(y, p, label_smoothing=s), huber, rtol=1e-4)
    np.testing.assert_allclose(losses.cross_entropy(y, p, label_smoothing=0.0), losses.cross_entropy(y, p))
    settings = yt8m_flags.default_model_settings(label_smoothing=s)
    loss = losses.get_loss(settings["label_loss"], **registry.loss_kwargs(settings))
    np.testing.assert_allclose(loss(y, p), ce.sum(1), rtol=1e-5)
    with pytest.raises(registry.ModelSettingsError, match="label_smoothing"):
        registry.loss_kwargs(dict(settings, label_loss="HingeLoss"))


def test_focal_gamma_neg_by_hand():
    y = np.array([[1, 0, 0], [0, 1, 1]], np.float32)
    p = np.array([[0.9, 0.2, 0.01], [0.3, 0.6, 0.99]], np.float32)
    eps = 1e-5
    # Video 1: the positive keeps -log(0.9); the negatives are weighted by their own probability (gamma 1).
    first = -(np.log(0.9 + eps) + 0.2 * np.log(0.8 + eps) + 0.01 * np.log(0.99 + eps))
    second = -(0.3 ** 2 * np.log(0.7 + eps) + np.log(0.6 + eps) + np.log(0.99 + eps))
    np.testing.assert_allclose(losses.cross_entropy(y[:1], p[:1], focal_gamma_neg=1.0), [first], rtol=1e-5)
    np.testing.assert_allclose(losses.cross_entropy(y[1:], p[1:], focal_gamma_neg=2.0), [second], rtol=1e-5)
    settings = yt8m_flags.default_model_settings(focal_gamma_neg=1.0)
    loss = losses.get_loss(settings["label_loss"], **registry.loss_kwargs(settings))
    np.testing.assert_allclose(loss(y[:1], p[:1]), [first], rtol=1e-5)
    with pytest.raises(registry.ModelSettingsError, match="focal_gamma_neg"):
        registry.loss_kwargs(dict(settings, label_loss="PseudoHuberLoss"))


# ---- the k-NN memory --------------------------------------------------------------------------------------------
def _memory(size=4, k=2, weight=0.5, classes=5, temperature=0.1):
    head = MLP(classes, hidden_sizes=(3,), layer_norm=True, name="head")
    return KnnMemory(head, classes, memory_size=size, k=k, temperature=temperature, weight=weight)


def _multi_hot(rows, classes=5):
    y = np.zeros((len(rows), classes), np.float32)
    for i, row in enumerate(rows):
        y[i, row] = 1
    return y


def test_knn_memory_vote_by_hand():
    layer = _memory()
    x = RNG.normal(size=(3, 4)).astype("float32")
    labels = _multi_hot([[0], [1, 2], [4]])
    before = np.asarray(layer(x, training=False))  # empty memory: the MLP alone
    np.testing.assert_allclose(before, np.asarray(layer.classifier(x)), rtol=1e-6)
    train_out = np.asarray(layer(x, labels=labels, training=True))
    np.testing.assert_allclose(train_out, np.asarray(layer.classifier(x)), rtol=1e-6)  # training: the MLP's output
    assert int(layer.count.numpy()) == 3

    q = RNG.normal(size=(2, 4)).astype("float32")
    keys = np.asarray(layer.classifier.features(x))
    keys = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    np.testing.assert_allclose(layer.keys.numpy()[:3], keys, atol=2e-3)  # float16 keys
    hq = np.asarray(layer.classifier.features(q))
    hq = hq / np.linalg.norm(hq, axis=1, keepdims=True)
    sims = hq @ layer.keys.numpy()[:3].astype(np.float32).T
    expected = []
    for row in range(2):
        top = np.argsort(-sims[row])[:2]
        w = np.exp((sims[row, top] - sims[row, top[0]]) / 0.1)
        expected.append((w[:, None] * labels[top]).sum(0) / w.sum())
    mlp = np.asarray(layer.classifier(q))
    np.testing.assert_allclose(np.asarray(layer(q, training=False)), 0.5 * mlp + 0.5 * np.array(expected),
                               rtol=1e-4, atol=1e-6)


def test_knn_memory_output_space_vote_by_hand():
    """Output keys: the 2 largest entries of sqrt(h(x)) per training video, normalised among themselves, computed by
    refresh_memory() from the stored hidden features with h's weights at that time; the second vote weighs
    neighbours by the cosine of sqrt(h(q)) to those keys."""
    head = MLP(5, hidden_sizes=(3,), layer_norm=True, name="head")
    layer = KnnMemory(head, 5, memory_size=4, k=2, temperature=0.1, weight=0.3, output_weight=0.2,
                      output_temperature=0.05, output_entries=2)
    x = RNG.normal(size=(3, 4)).astype("float32")
    labels = _multi_hot([[0], [1, 2], [4]])
    layer(x, labels=labels, training=True)
    np.testing.assert_allclose(layer.key_norms.numpy()[:3], np.linalg.norm(head.features(x), axis=1), rtol=1e-5)
    head.logits.kernel.assign(head.logits.kernel * 3.0)  # training goes on after the write
    tf.function(layer.refresh_memory)()  # as the trainer calls it
    root = np.sqrt(np.asarray(head(x)))
    top = np.argsort(-root, axis=1)[:, :2]
    np.testing.assert_array_equal(layer.output_ids.numpy()[:3], top)
    keys = np.zeros((3, 5), np.float32)
    for i in range(3):
        keys[i, top[i]] = root[i, top[i]] / np.linalg.norm(root[i, top[i]])
    np.testing.assert_allclose(layer.output_values.numpy()[:3], np.take_along_axis(keys, top, 1), atol=1e-3)

    def vote(sims, temperature):
        best = np.argsort(-sims)[:2]
        w = np.exp((sims[best] - sims[best[0]]) / temperature)
        return (w[:, None] * labels[best]).sum(0) / w.sum()

    q = RNG.normal(size=(2, 4)).astype("float32")
    p = np.asarray(head(q))
    hq = np.asarray(head.features(q))
    hq = hq / np.linalg.norm(hq, axis=1, keepdims=True)
    hidden_sims = hq @ layer.keys.numpy()[:3].astype(np.float32).T
    rq = np.sqrt(p) / np.linalg.norm(np.sqrt(p), axis=1, keepdims=True)
    expected = [0.5 * p[i] + 0.3 * vote(hidden_sims[i], 0.1) + 0.2 * vote(rq[i] @ keys.T, 0.05) for i in range(2)]
    np.testing.assert_allclose(np.asarray(layer(q, training=False)), expected, rtol=2e-3, atol=1e-4)
    with pytest.raises(ValueError, match="weight \\+ output_weight <= 1"):
        KnnMemory(MLP(5, hidden_sizes=(3,)), 5, weight=0.9, output_weight=0.2)
    settings = yt8m_flags.default_model_settings(model="MlpModel", knn_memory_size=64, knn_weight=0.9,
                                                 knn_output_weight=0.2)
    with pytest.raises(registry.ModelSettingsError, match="knn_output_weight 0.2 is more than 1"):
        registry.check_settings(settings)


def test_knn_memory_keeps_one_slot_per_video_and_wraps():
    layer = _memory(size=4, k=3, weight=1.0)
    x = RNG.normal(size=(2, 4)).astype("float32")
    labels = _multi_hot([[0], [1]])
    layer(x, labels=labels, training=True)
    before = layer.keys.numpy().copy()
    layer.classifier.logits.kernel.assign(layer.classifier.logits.kernel * 2)  # features unchanged
    layer.classifier.hidden_layers[0].kernel.assign(layer.classifier.hidden_layers[0].kernel * -1)  # changed
    layer(x[::-1], labels=labels[::-1], training=True)  # the same two videos in the next epoch
    assert int(layer.count.numpy()) == 2  # rewritten in their own slots, not appended
    h = np.asarray(layer.classifier.features(x))
    np.testing.assert_allclose(layer.keys.numpy()[:2], h / np.linalg.norm(h, axis=1, keepdims=True), atol=2e-3)
    assert not np.allclose(before[:2], layer.keys.numpy()[:2], atol=1e-2)
    np.testing.assert_array_equal(layer.label_ids.numpy()[:2, 0], [0, 1])
    assert layer.capacity_note() is None
    new = RNG.normal(size=(3, 4)).astype("float32")
    layer(new, labels=_multi_hot([[2], [3], [4]]), training=True)  # 3 new videos: slots 2, 3, then 0 (the ring)
    assert int(layer.count.numpy()) == 5
    assert "only the most recent 4 training videos" in layer.capacity_note()
    np.testing.assert_array_equal(layer.label_ids.numpy()[:, 0], [4, 1, 2, 3])


def test_knn_memory_video_twice_in_a_batch_takes_one_slot():
    layer = _memory(size=4, k=3, weight=1.0)
    x = RNG.normal(size=(2, 4)).astype("float32")
    layer(np.stack([x[0], x[1], x[0]]), labels=_multi_hot([[0], [1], [0]]), training=True)
    assert int(layer.count.numpy()) == 2
    votes = np.asarray(layer(x[:1], training=False))
    h = np.asarray(layer.classifier.features(x))
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    w1 = np.exp((float(h[0] @ h[1]) - 1.0) / 0.1)
    np.testing.assert_allclose(votes[0, :2], [1 / (1 + w1), w1 / (1 + w1)], rtol=2e-2, atol=1e-3)


def test_knn_memory_finds_a_video_among_entries_sharing_the_first_projection():
    layer = _memory(size=8, k=2)
    layer.build((None, 4))
    # Slots 0-4 hold five videos whose first projections agree within tolerance (slot 4: empty, count 4).
    layer.fingerprints.assign(np.array([[5.0, 1.0], [5.0, 2.0], [5.000001, 3.0], [-2.0, 4.0], [5.0, 9.0]] +
                                       [[0.0, 0.0]] * 3, np.float32))
    layer.count.assign(4)
    seen, slots = layer._find(np.array([[5.0, 3.0], [-2.0, 4.0], [5.0, 4.0], [5.0, 9.0], [7.0, 1.0]], np.float32))
    np.testing.assert_array_equal(np.asarray(seen), [True, True, False, False, False])
    np.testing.assert_array_equal(np.asarray(slots)[:2], [2, 3])
    layer.count.assign(9)  # wrapped: every slot holds a video
    seen, slots = layer._find(np.array([[5.0, 9.0]], np.float32))
    assert bool(np.asarray(seen)[0]) and int(np.asarray(slots)[0]) == 4


def test_knn_memory_vote_counts_a_duplicate_entry_once():
    layer = _memory(size=4, k=3, weight=1.0)
    x = RNG.normal(size=(2, 4)).astype("float32")
    layer(x, labels=_multi_hot([[0], [1]]), training=True)
    # A memory holding video 0 twice (the writes never do this; the vote must not count it twice anyway).
    layer.keys.assign(np.concatenate([layer.keys.numpy()[:2], layer.keys.numpy()[:1], layer.keys.numpy()[3:]]))
    layer.label_ids.assign(np.concatenate([layer.label_ids.numpy()[:2], layer.label_ids.numpy()[:1],
                                           layer.label_ids.numpy()[3:]]))
    layer.fingerprints.assign(np.concatenate([layer.fingerprints.numpy()[:2], layer.fingerprints.numpy()[:1],
                                              layer.fingerprints.numpy()[3:]]))
    layer.count.assign(3)
    votes = np.asarray(layer(x[:1], training=False))
    h = np.asarray(layer.classifier.features(x))
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    w1 = np.exp((float(h[0] @ h[1]) - 1.0) / 0.1)
    # Counted twice, video 0 would get 2 / (2 + w1).
    np.testing.assert_allclose(votes[0, :2], [1 / (1 + w1), w1 / (1 + w1)], rtol=2e-2, atol=1e-3)


def test_knn_memory_config_and_checkpoint_round_trip(tmp_path):
    settings = yt8m_flags.default_model_settings(model="MlpModel", feature_sizes="4,2", num_classes=6,
                                                 mlp_hidden_sizes="5", mlp_layer_norm=True, knn_memory_size=8,
                                                 knn_k=3, knn_output_weight=0.2, output_bias_init=LOG_PRIOR,
                                                 input_normalization="l2_scaled")
    trained = registry.build_model(settings)
    batch = {"video_matrix": RNG.normal(size=(5, 6)).astype("float32"), "num_frames": np.ones(5, np.int32),
             "labels": _multi_hot([[0], [1], [2, 3], [4], [5]], 6)}
    trained(batch, training=True)
    path = train_dir_lib.make_checkpoint(trained).save(str(tmp_path / "model.ckpt"))
    fresh = registry.build_model(settings)
    train_dir_lib.make_checkpoint(fresh).restore(path).assert_existing_objects_matched()
    assert int(fresh.classifier.count.numpy()) == 5
    np.testing.assert_allclose(fresh(batch)["predictions"], trained(batch)["predictions"], rtol=1e-6)
    clone = _roundtrip(trained.classifier)
    assert (clone.memory_size, clone.k, clone.weight, clone.classifier.hidden_sizes) == (8, 3, 0.3, [5])
    assert (clone.output_weight, clone.output_temperature, clone.output_entries) == (0.2, 0.02, 6)  # at most C
    np.testing.assert_array_equal(fresh.classifier.output_ids.numpy(), trained.classifier.output_ids.numpy())


def test_knn_memory_needs_an_mlp_on_fixed_input_and_room_for_every_training_video():
    settings = yt8m_flags.default_model_settings(model="LogisticModel", knn_memory_size=8)
    with pytest.raises(registry.ModelSettingsError, match="knn_memory_size needs MlpModel"):
        registry.check_settings(settings)
    frames = dict(frame_features=True, feature_names="rgb,audio", video_level_classifier_model="MlpModel",
                  knn_memory_size=8, knn_k=2)
    registry.check_settings(yt8m_flags.default_model_settings(model="MeanPoolingModel", **frames))
    with pytest.raises(registry.ModelSettingsError, match="the trainable pooling of --model DbofModel changes"):
        registry.check_settings(yt8m_flags.default_model_settings(model="DbofModel", **frames))
    # The preset's memory on the 2018 training set: refused before training, with the cost of a memory that fits:
    # 2 members x 3,888,919 videos x (2048 x 2 key bytes + 32 x 4 label bytes + 8 fingerprint bytes + 4 + 32 x 6
    # output-key bytes) = 34.4e9 bytes = 32.1 GiB.
    best = {**yt8m_flags.default_model_settings(), **{k: v for k, v in presets.get_preset("video-best").items()
                                                      if k in yt8m_flags.MODEL_FLAGS}}
    registry.check_memory_capacity(best, 32768)
    with pytest.raises(registry.ModelSettingsError, match=r"keep only the last 0\.8% .*\(about 32\.1 GiB"):
        registry.check_memory_capacity(best, 3888919)
    with pytest.raises(ValueError, match="features"):
        KnnMemory(Logistic(3), 3)


def test_knn_memory_jit_step_writes():
    layer = KnnMemory(MLP(5, hidden_sizes=(3,), layer_norm=True, name="head"), 5, memory_size=6, k=2,
                      output_weight=0.2, output_entries=3)
    x = tf.constant(RNG.normal(size=(3, 4)).astype("float32"))
    y = tf.constant(_multi_hot([[0], [1], [2]]))
    layer(x, training=False)

    @tf.function(jit_compile=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(layer(x, labels=y, training=True))
        return tape.gradient(loss, layer.trainable_variables)

    grads = step(x, y)
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads)
    assert int(layer.count.numpy()) == 3
    layer.refresh_memory()
    np.testing.assert_allclose(tf.function(layer, jit_compile=True)(x, training=False), layer(x, training=False),
                               rtol=1e-5, atol=1e-6)  # both votes under XLA


# ---- the in-model ensemble ---------------------------------------------------------------------------------------
def test_ensemble_averages_its_members_and_round_trips():
    members = [MLP(5, hidden_sizes=(3,), layer_norm=True, name=f"member_{i}") for i in range(2)]
    layer = Ensemble(members)
    x = RNG.normal(size=(4, 6)).astype("float32")
    out = np.asarray(layer(x))
    each = [np.asarray(m(x)) for m in members]
    assert not np.allclose(each[0], each[1])  # independently initialised
    np.testing.assert_allclose(out, (each[0] + each[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(x, return_members=True)), np.stack(each, axis=1), rtol=1e-6)
    clone = _roundtrip(layer)
    assert [m.name for m in clone.members] == ["member_0", "member_1"]
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), out, rtol=1e-6)


def test_ensemble_members_are_trained_on_their_own_loss():
    """The loss is the mean of the members' own losses (not the loss of their average): member 0's gradient does
    not depend on member 1."""
    labels = tf.constant(_multi_hot([[0], [1, 3]]))
    loss_fn = losses.get_loss("CrossEntropyLoss")
    p0 = tf.constant(RNG.uniform(0.05, 0.95, size=(2, 5)).astype("float32"))
    grads = []
    for p1 in (tf.fill((2, 5), 0.1), tf.fill((2, 5), 0.9)):
        with tf.GradientTape() as tape:
            tape.watch(p0)
            outputs = {"predictions": (p0 + p1) / 2, "member_predictions": tf.stack([p0, p1], axis=1)}
            per_example = step_lib.per_example_loss(loss_fn, labels, outputs)
        np.testing.assert_allclose(per_example, (loss_fn(labels, p0) + loss_fn(labels, p1)) / 2, rtol=1e-6)
        grads.append(tape.gradient(per_example, p0).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
    np.testing.assert_allclose(step_lib.per_example_loss(loss_fn, labels, {"predictions": p0}), loss_fn(labels, p0))


def test_ensemble_of_knn_members_trains_and_evaluates(tmp_path):
    """--ensemble_members=2 with the memory: both members fill their own memory, eval.py reads the train_dir."""
    from tests import cli_testing as cli

    data = cli.write_data(tmp_path / "data", shards=1, videos=32)
    train_dir = str(tmp_path / "run")
    settings = yt8m_flags.default_model_settings(
        model="MlpModel", mlp_hidden_sizes="8", knn_memory_size=64, knn_k=4, ensemble_members=2,
        feature_names="mean_rgb,mean_audio", feature_sizes=f"{cli.RGB},{cli.AUDIO}", num_classes=cli.CLASSES)
    trainer.train(settings, trainer.TrainOptions(train_data_pattern=data, train_dir=train_dir, batch_size=16,
                                                 num_epochs=2, shuffle_buffer=1, num_readers=1, progress=False))
    model = train_dir_lib.load_trained_model(train_dir)[0]
    assert [int(m.count.numpy()) for m in model.classifier.members] == [32, 32]
    assert json.load(open(f"{train_dir}/model_flags.json"))["ensemble_members"] == 2
    metrics_file = str(tmp_path / "m.json")
    cli.run("eval.py", f"--eval_data_pattern={data}", f"--train_dir={train_dir}", "--run_once",
            f"--output_metrics={metrics_file}")
    expected = cli.gap_by_hand(*cli.predictions_and_labels(train_dir, data))
    assert json.load(open(metrics_file))["gap"] == pytest.approx(expected, abs=1e-5)


def test_ensemble_members_setting_is_checked():
    settings = yt8m_flags.default_model_settings(model="ManyToManyModel", frame_features=True, ensemble_members=2)
    with pytest.raises(registry.ModelSettingsError, match="ensemble_members"):
        registry.check_settings(settings)


# ---- settings and presets ---------------------------------------------------------------------------------------
def test_settings_without_the_new_keys_still_build():
    """model_flags.json written before these knobs existed (no input_normalization, knn_*, ...) still loads."""
    settings = yt8m_flags.default_model_settings(model="MlpModel", feature_sizes="4,2", num_classes=5,
                                                 mlp_hidden_sizes="3")
    old = {k: v for k, v in settings.items() if k not in registry.LATER_DEFAULTS}
    assert ([(w.path, tuple(w.shape)) for w in registry.build_model(old).weights]
            == [(w.path, tuple(w.shape)) for w in registry.build_model(settings).weights])


@pytest.mark.parametrize("name", ["video-best", "video-moe"])
def test_video_presets_build(name):
    preset = presets.get_preset(name)
    assert preset["feature_names"] == "mean_rgb,mean_audio" and preset["feature_sizes"] == "1024,128"
    assert not preset["frame_features"]
    unknown = set(preset) - set(yt8m_flags.MODEL_FLAGS) - set(TrainOptions.__dataclass_fields__)
    assert not unknown, unknown
    settings = _model_settings(name)
    registry.check_settings(settings)
    model = registry.build_model(settings)
    out = model(registry.dummy_batch(settings, 2))["predictions"].numpy()
    assert out.shape == (2, 3862) and np.all(np.isfinite(out))
    if name == "video-best":
        assert isinstance(model.classifier, Ensemble) and isinstance(model.input_normalization, FeatureNormalization)
        assert [type(m) for m in model.classifier.members] == [KnnMemory, KnnMemory]
        assert [(m.weight, m.output_weight, m.output_temperature) for m in model.classifier.members] == [
            (0.2, 0.3, 0.02)] * 2  # both votes reach both members
        assert registry.loss_kwargs(settings) == {"focal_gamma_neg": 1.0}
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        assert trainable == 2 * (1152 * 2048 + 2 * 2048 + 2048 * 3862 + 3862)  # hidden (no bias: LN), LN, output


def test_video_preset_flags_exist():
    from absl import flags

    values = flags.FlagValues()
    yt8m_flags.define_model_flags(values)
    for name in ("video-best", "video-moe"):
        for key in presets.get_preset(name):
            assert key in yt8m_flags.MODEL_FLAGS or key in TrainOptions.__dataclass_fields__


def test_preset_schedules_are_relative_to_the_data_and_yield_to_explicit_flags():
    from absl import flags

    def applied(*argv):
        values = flags.FlagValues()
        yt8m_flags.define_train_flags(values)
        values(["train.py", *argv])
        yt8m_flags.apply_preset("video-best", values)
        return trainer.TrainOptions(**{k: values[k].value for k in TrainOptions.__dataclass_fields__ if k in values})

    # x0.75 every 1.08 epochs: 25k examples (48 steps of 512) on the 23,091-video tuning split, as when tuned; 4.2M
    # examples on the 3,888,919-video 2018 training set.
    options = applied()
    assert trainer.learning_rate_decay_examples(options, 23091) == pytest.approx(24938.28)
    assert trainer.learning_rate_decay_examples(options, 3888919) == pytest.approx(4200032.52)
    schedule = optimization.learning_rate_schedule(0.003, 0.75, trainer.learning_rate_decay_examples(options, 23091),
                                                   512)
    assert float(schedule(47)) == pytest.approx(0.003) and float(schedule(48)) == pytest.approx(0.00225)
    explicit = applied("--learning_rate_decay_examples=1.5e6")  # a float, as the starter's flags are written
    assert trainer.learning_rate_decay_examples(explicit, 23091) == 1.5e6


def test_video_classifier_config_round_trip_with_every_knob():
    settings = yt8m_flags.default_model_settings(model="MlpModel", feature_sizes="4,2", num_classes=5,
                                                 mlp_hidden_sizes="3", knn_memory_size=4, knn_k=2,
                                                 input_normalization="l2", mlp_input_noise=0.2,
                                                 mlp_activation="gelu", output_bias_init=-3.0)
    model = registry.build_model(settings)
    clone = VideoClassifier.from_config(json.loads(json.dumps(model.get_config())))
    clone(registry.dummy_batch(settings))
    clone.set_weights(model.get_weights())
    batch = {"video_matrix": RNG.normal(size=(2, 6)).astype("float32"), "num_frames": np.ones(2, np.int32)}
    np.testing.assert_allclose(clone(batch)["predictions"], model(batch)["predictions"], rtol=1e-6)


def _dense_output_keys(memory):
    """(memory_size, C) output keys, the sparse (ids, values) pairs scattered."""
    keys = np.zeros((memory.memory_size, memory.num_classes), np.float32)
    np.put_along_axis(keys, memory.output_ids.numpy(), memory.output_values.numpy().astype(np.float32), axis=1)
    return keys


def test_knn_memory_under_mirrored_strategy_equals_one_device(tmp_path):
    """Two replicas (2 logical CPUs) gather their batches before writing: the memory holds the same videos, with
    the same labels and (up to float rounding of the two runs) the same hidden-space and output-space keys, as
    training on one device."""
    from tests import cli_testing as cli
    from yt8m_tf.training import train_dir as train_dir_lib

    data = cli.write_data(tmp_path / "data", shards=2, videos=32)
    settings = yt8m_flags.default_model_settings(
        model="MlpModel", mlp_hidden_sizes="8", knn_memory_size=128, knn_k=4, knn_output_weight=0.2,
        feature_names="mean_rgb,mean_audio", feature_sizes=f"{cli.RGB},{cli.AUDIO}", num_classes=cli.CLASSES)
    memories = []
    for name, replicas in (("one", 1), ("two", 2)):  # in process, over the logical CPUs of tests/conftest.py
        train_dir = str(tmp_path / name)
        trainer.train(settings, trainer.TrainOptions(
            train_data_pattern=data, train_dir=train_dir, batch_size=16, num_epochs=2, deterministic=True,
            shuffle_buffer=1, num_readers=1, progress=False, strategy="mirrored" if replicas > 1 else "default",
            logical_cpu_devices=replicas))
        memory = train_dir_lib.load_trained_model(train_dir)[0].classifier
        assert int(memory.count.numpy()) == 64  # every training video once, after two epochs
        saved = _dense_output_keys(memory)
        memory.refresh_memory()  # the trainer refreshed the output keys with the final weights before saving
        np.testing.assert_allclose(saved, _dense_output_keys(memory), atol=2e-3)
        assert np.all(np.abs(saved[:64]).sum(1) > 0.5)
        order = np.lexsort(memory.fingerprints.numpy()[:64].T)
        memories.append({"fingerprints": memory.fingerprints.numpy()[:64][order],
                         "labels": memory.label_ids.numpy()[:64][order],
                         "keys": memory.keys.numpy()[:64][order].astype(np.float32),
                         "output_keys": _dense_output_keys(memory)[:64][order]})
    # The two runs' matmuls round differently (by up to about 6e-8 on this CPU); KnnMemory._find matches
    # fingerprints within 1e-6 x (1 + |b|), the same tolerance.
    np.testing.assert_allclose(memories[0]["fingerprints"], memories[1]["fingerprints"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(memories[0]["labels"], memories[1]["labels"])
    np.testing.assert_allclose(memories[0]["keys"], memories[1]["keys"], atol=2e-2)
    np.testing.assert_allclose(memories[0]["output_keys"], memories[1]["output_keys"], atol=2e-2)
