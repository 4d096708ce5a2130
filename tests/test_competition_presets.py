"""The competition winners' presets (yt8m_tf/competition_presets.py): their flags exist, the published parameter
counts, and 2 training steps of every preset on frame-level files (tiny widths by default; `-m slow` runs the
published widths)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.common import global_state

from yt8m_tf import competition_presets, flags as flags_lib, losses, presets, registry, synthetic
from yt8m_tf.training.trainer import TrainOptions

NAMES = sorted(competition_presets.ROWS)
TRAIN_KEYS = set(TrainOptions.__dataclass_fields__)
MODEL_KEYS = set(flags_lib.MODEL_FLAGS)
NUM_CLASSES, RGB, AUDIO, MAX_FRAMES = 10, 8, 4, 8
TINY = {"feature_sizes": f"{RGB},{AUDIO}", "num_classes": NUM_CLASSES, "max_frames": MAX_FRAMES,
        "netvlad_cluster_size": 4, "netvlad_hidden_size": 8, "fv_cluster_size": 4, "fv_hidden_size": 8,
        "dbof_cluster_size": 16, "dbof_hidden_size": 8, "gru_cells": 8, "lstm_cells": 8, "iterations": 5,
        "nextvlad_cluster_size": 4, "groups": 4, "nextvlad_hidden_size": 8, "gating_reduction": 2}


def preset_settings(name, **overrides):
    """The preset's model settings over the flag defaults (as `flags.apply_preset`), then `overrides`."""
    preset = presets.get_preset(name)
    return flags_lib.default_model_settings(**{**{k: v for k, v in preset.items() if k in MODEL_KEYS}, **overrides})


def test_presets_are_listed_and_set_only_known_flags():
    assert set(NAMES) <= set(presets.PRESETS)
    assert {"willow/netvlad-gated", "nextvlad/single", "nextvlad/mix3", "garden/dbof"} <= set(NAMES)
    for name in NAMES:
        preset = presets.get_preset(name)
        assert not set(preset) - MODEL_KEYS - TRAIN_KEYS, name
        registry.check_settings(preset_settings(name))
    best = presets.PRESETS["willow/netvlad-gated"]  # WILLOW's best single model (README command)
    assert (best["model"], best["netvlad_cluster_size"], best["netvlad_hidden_size"], best["netvlad_relu"],
            best["gating"], best["moe_prob_gating"], best["batch_size"], best["base_learning_rate"],
            best["learning_rate_decay"], best["learning_rate_decay_examples"]) == (
        "NetVLADModel", 256, 1024, False, True, True, 80, 0.0002, 0.8, 4000000)
    mix = presets.PRESETS["nextvlad/mix3"]  # NeXtVLAD paper 4.2 and Table 2
    assert (mix["mix_number"], mix["nextvlad_cluster_size"], mix["groups"], mix["nextvlad_hidden_size"],
            mix["gating_reduction"], mix["drop_rate"], mix["cl_temperature"], mix["cl_lambda"], mix["batch_size"],
            mix["l2_penalty"]) == (3, 112, 8, 2048, 16, 0.5, 3.0, 9.0, 160, 1e-5)
    bigru = presets.PRESETS["skalic/bigru-gated"]  # runme.md "Gated GRU model": 256 per tower x 2 GPUs
    assert (bigru["model"], bigru["gru_cells"], bigru["gating"], bigru["moe_prob_gating"], bigru["batch_size"],
            bigru["num_epochs"]) == ("BiGruModel", 1024, True, True, 512, 7)
    assert registry.make_layers(preset_settings("skalic/bigru-gated"))[0].gating
    lstm = presets.PRESETS["willow/lstm"]  # README: --iterations=150 --lstm_random_sequence=True
    assert (lstm["iterations"], lstm["lstm_random_sequence"], lstm["batch_size"]) == (150, True, 128)
    assert registry.make_layers(preset_settings("willow/lstm"))[0].sample_frames == 150
    garden = presets.PRESETS["garden/dbof"]  # Model Garden's DbofModel config
    assert (garden["dbof_cluster_size"], garden["dbof_hidden_size"], garden["dbof_pooling_method"],
            garden["moe_num_mixtures"], garden["dbof_activation"]) == (3000, 2000, "average", 5, "relu")
    assert registry.distillation_kwargs(preset_settings("nextvlad/mix3")) == {"temperature": 3.0, "weight": 9.0}


@pytest.mark.parametrize("overrides, message", [
    (dict(model="NeXtVLADModel", feature_sizes="1024,128", groups=6), "--groups 6"),
    (dict(model="MixNeXtVLADModel", nextvlad_hidden_size=8, gating_reduction=16), "--gating_reduction 16"),
    (dict(model="BiGruModel", gru_cells=7), "--gru_cells 7"),
    (dict(model="MixNeXtVLADModel", label_beta=0.1), "label processing"),
    (dict(model="NetVLADModel", use_context_gate_cluster_layer=True), "--use_context_gate_cluster_layer gates Dbof"),
    (dict(model="DbofModel", video_level_classifier_model="LogisticModel", use_input_context_gate=True),
     "--use_input_context_gate gates MoeModel"),
    (dict(model="DbofModel", use_output_context_gate=True, moe_prob_gating=True), "pick one"),
    (dict(model="NetVLADModel", lstm_random_sequence=True), "--lstm_random_sequence feeds"),
    (dict(model="FrameLevelLogisticModel", use_input_context_gate=True), "classifies with LogisticModel"),
    (dict(model="MixNeXtVLADModel", use_output_context_gate=True), "classifies with MixNeXtVLADModel"),
    (dict(model="DbofModel", context_gate_cluster_bottleneck_size=8), "which is off"),
])
def test_bad_settings_are_one_line_errors(overrides, message):
    settings = flags_lib.default_model_settings(frame_features=True, feature_names="rgb,audio", **overrides)
    with pytest.raises(registry.ModelSettingsError, match=message):
        registry.check_settings(settings)


def count_weights(settings):
    """Trainable weights of the model the settings describe, counted from the variables' shapes only (built in a
    stateless scope without initialisation: no memory, no time)."""
    try:
        with keras.StatelessScope(initialize_variables=False):
            g, h = registry.make_layers(settings)
            frames = (None, settings["max_frames"], sum(int(s) for s in settings["feature_sizes"].split(",")))
            layers = [h] if g is None else [g, h]
            if g is None:
                h.build(frames)
            else:
                g.build(frames)
                h.build((None, g.output_dim(frames[-1])))
            return sum(math.prod(w.shape) for layer in layers for w in layer.trainable_weights)
    finally:
        # Keras keeps such variables in a global list and initialises them all at the next stateless scope (any
        # model build): forget them, or a later test allocates and fills the 400M counted weights.
        global_state.set_global_attribute("uninitialized_variables", [])


def test_published_parameter_counts():
    """NeXtVLAD paper Table 2: single model 79M, 3-model mixture 237M; Table 1: K=128 (8G) 89M; within 1%."""
    counts = {}
    for name, row in competition_presets.ROWS.items():
        if row["parameters"]:
            counts[name] = count_weights(preset_settings(name))
            assert abs(counts[name] / row["parameters"] - 1) < 0.01, (name, counts[name], row["parameters"])
    assert set(counts) == {"nextvlad/single", "nextvlad/k128", "nextvlad/mix3"}
    # The original code's trainable variables for K=112, G=8, H=2048, r=16, 3862 classes (linrongc/youtube-8m
    # nextvlad.py shapes, summed by hand): video stream 2,099,200 (expansion FC) + 16,392 (attention FC)
    # + 1,835,008 (cluster_weights) + 1,792 (cluster_bn) + 28,672 (cluster_weights2) + 57,344 (vlad_bn); audio
    # 33,024 + 1,028 + 57,344 + 448 + 3,584 + 7,168; hidden 66,060,288 + 4,096 (BN); SE gating 262,144 + 256
    # + 262,144; logistic 7,909,376 + 3,862.
    assert counts["nextvlad/single"] == 78_643_170
    # The mixture: three such members, the gate's batch norm (2 x 1152) and dense layer (1152 x 3 + 3).
    assert counts["nextvlad/mix3"] == 3 * 78_643_170 + 2 * 1152 + 1152 * 3 + 3
    # The 2018 winners' Lstmbidirect (no published count), by hand: 2 directions x 4 x 512 x (1152 + 512 + 1),
    # an LSTM of 1024 on 1024: 4 x 1024 x (2 x 1024 + 1), the logistic head 1024 x 3862 + 3862.
    assert count_weights(preset_settings("skalic/bilstm")) == 6_819_840 + 8_392_704 + 3_958_550


@pytest.fixture(scope="module")
def tiny_batches(tmp_path_factory):
    """Two batches of 4 read from frame-level files by the presets' reader (rgb,audio at tiny width)."""
    root = tmp_path_factory.mktemp("competition")
    synthetic.write_dataset(str(root), num_shards=1, videos_per_shard=8, min_frames=1, max_frames=MAX_FRAMES,
                            num_classes=NUM_CLASSES, rgb_size=RGB, audio_size=AUDIO, zero_frame_videos=1)
    reader = registry.make_reader(preset_settings("nextvlad/single", **TINY))
    return list(reader.dataset(str(root / "train*.tfrecord"), 4).take(2))


def _fingerprint(weight):
    """Sum, min and max of a weight: reductions, not a copy (the published models have up to 333M weights)."""
    return tuple(float(f(weight)) for f in (tf.reduce_sum, tf.reduce_min, tf.reduce_max))


def train_two_steps(settings, batches, learning_rate):
    """Two steps of the preset's model as the trainer trains it: the label loss (every member's too, and the
    online distillation term for the NeXtVLAD mixture) plus the L2 penalties, Adam."""
    keras.utils.set_random_seed(0)
    model = registry.build_model(settings)
    loss_fn = losses.get_loss(settings["label_loss"], **registry.loss_kwargs(settings))
    distillation = registry.distillation_kwargs(settings)
    optimizer = keras.optimizers.Adam(learning_rate)
    before = [_fingerprint(w) for w in model.trainable_weights]
    for batch in batches:
        with tf.GradientTape() as tape:
            outputs = model(batch, training=True)
            per_example = loss_fn(batch["labels"], outputs["predictions"])
            if distillation is not None:
                per_example += sum(loss_fn(batch["labels"], member)
                                   for member in tf.unstack(outputs["member_predictions"], axis=1))
                per_example += losses.online_distillation_loss(outputs["mixture_logits"], outputs["member_logits"],
                                                               **distillation)
            loss = tf.reduce_mean(per_example) + (tf.add_n(model.losses) if model.losses else 0.0)
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        assert np.isfinite(float(loss))
    moved = sum(b != _fingerprint(w) for b, w in zip(before, model.trainable_weights))
    assert moved == len(before), f"{len(before) - moved} weights did not move"
    predictions = np.asarray(model(batch, training=False)["predictions"])
    assert predictions.shape == (len(batch["labels"]), settings["num_classes"]) and np.all(np.isfinite(predictions))


@pytest.mark.parametrize("name", NAMES)
def test_preset_trains_two_steps_tiny(name, tiny_batches):
    train_two_steps(preset_settings(name, **TINY), tiny_batches, learning_rate=0.001)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_preset_trains_two_steps_published_width(name, tmp_path_factory):
    """The published widths on official-size frames (1024 + 128 features, 100-300 frames, 3862 classes), batch 2.
    About 4 minutes on 2 CPU cores; the 333M-weight WILLOW models need about 12 GB of memory (weights, gradients,
    Adam's two slots and TF's temporaries)."""
    root = tmp_path_factory.mktemp("published")
    synthetic.write_dataset(str(root), num_shards=1, videos_per_shard=4, min_frames=100, max_frames=300)
    settings = preset_settings(name)
    assert settings["feature_sizes"] == "1024,128" and settings["max_frames"] == 300
    batches = list(registry.make_reader(settings).dataset(str(root / "train*.tfrecord"), 2).take(2))
    train_two_steps(settings, batches, learning_rate=presets.PRESETS[name]["base_learning_rate"])


def test_model_garden_context_gates_add_their_weights():
    """garden/dbof with Model Garden's three optional gates: each adds a (d, d) kernel, a bias and the trainable
    gamma and beta of its batch norm, d = 3000 (cluster), 2000 (MoE input), 3862 (MoE output); a bottleneck of
    100 on the cluster gate replaces its (3000, 3000) kernel by (3000, 100) + (100, 3000) with a bias and BN."""
    base = count_weights(preset_settings("garden/dbof"))
    gates = dict(use_context_gate_cluster_layer=True, use_input_context_gate=True, use_output_context_gate=True)
    gated = count_weights({**preset_settings("garden/dbof"), **gates})
    assert gated - base == sum(d * d + 3 * d for d in (3000, 2000, 3862))
    squeezed = count_weights({**preset_settings("garden/dbof"), "use_context_gate_cluster_layer": True,
                              "context_gate_cluster_bottleneck_size": 100})
    assert squeezed - base == (3000 * 100 + 100 + 2 * 100) + (100 * 3000 + 3000 + 2 * 3000)
