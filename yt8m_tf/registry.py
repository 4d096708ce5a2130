"""Model names -> (pooling g, classifier h, label processing C) built from the plain settings dict.

This is the one place where settings (flags, presets, model_flags.json) become layer keyword arguments; layers
never see flags. `--model` names keep the starter code's (LogisticModel, MoeModel, FrameLevelLogisticModel,
DbofModel, LstmModel) and add one per paper variant; `--video_level_classifier_model` picks h under a pooling
model, as in the starter code.
"""

import numpy as np

import readers
from yt8m_tf import classifiers, pooling
from yt8m_tf.center_loss import MultiLabelCenterLoss
from yt8m_tf.classifiers.memory import KnnMemory
from yt8m_tf.label_processing import LabelProcessing
from yt8m_tf.model import FeatureNormalization, VideoClassifier

# Settings added after model_flags.json files were first written: a train_dir without them was trained with these.
LATER_DEFAULTS = {
    "input_normalization": "none", "mlp_activation": "relu", "mlp_input_noise": 0.0, "label_smoothing": 0.0,
    "knn_memory_size": 0, "knn_k": 50, "knn_temperature": 0.05, "knn_weight": 0.3, "ensemble_members": 1,
    "focal_gamma_neg": 0.0, "knn_output_weight": 0.0, "knn_output_temperature": 0.02, "ema_decay": 0.0,
    # DbofModel hard-coded relu6 before --dbof_activation (whose default, the starter's, is sigmoid)
    "dbof_activation": "relu6",
    # the competition winners' models (their flag defaults; no older train_dir used them)
    "netvlad_cluster_size": 64, "netvlad_hidden_size": 1024, "netvlad_relu": True, "gating": False,
    "moe_prob_gating": False, "fv_cluster_size": 64, "fv_hidden_size": 2048, "fv_relu": True,
    "fv_couple_weights": True, "dbof_relu": True, "softdbof_maxpool": False, "gru_cells": 1024, "gru_layers": 2,
    "nextvlad_cluster_size": 64, "nextvlad_hidden_size": 1024, "groups": 8, "expansion": 2, "drop_rate": 0.5,
    "gating_reduction": 8, "mix_number": 3, "cl_temperature": 2.0, "cl_lambda": 1.0,
    "lstm_random_sequence": False,
    # Model Garden's optional context gates
    "use_context_gate_cluster_layer": False, "context_gate_cluster_bottleneck_size": 0,
    "use_input_context_gate": False, "use_output_context_gate": False,
}


# Settings that change no weight of the model (losses, regularisation, dropout and noise, k-NN vote mixing, the
# weight average): a run may start from another one's weights (--init_from) with other values of these.
WEIGHTLESS_SETTINGS = (
    "label_loss", "huber_delta", "label_smoothing", "focal_gamma_neg", "center_loss_lambda", "l2_penalty",
    "mlp_dropout", "mlp_input_noise", "lstm_dropout", "noise_scale", "iterations", "sample_random_frames", "knn_k",
    "knn_temperature", "knn_weight", "knn_output_temperature", "ema_decay", "lstm_random_sequence",
)


def _get(s, name):
    return s.get(name, LATER_DEFAULTS.get(name))


def _sizes(text):
    return tuple(int(s) for s in str(text).split(",") if s.strip())


def _sequence_samples(s):
    """Frames a recurrent pooling draws per video: --iterations with WILLOW's --lstm_random_sequence, else 0."""
    return s["iterations"] if _get(s, "lstm_random_sequence") else 0


def _rnn_options(s, build):
    """What every recurrent pooling takes from the settings: cuDNN unless XLA-compiled, WILLOW's frame draw."""
    return {"use_cudnn": False if build.get("jit_compile") else "auto", "sample_frames": _sequence_samples(s)}


def _lstm(s, build, **variant):
    sums = variant.get("use_input_sum") or variant.get("use_output_sum")
    return pooling.LSTMPooling(units=s["lstm_cells"], num_layers=s["lstm_layers"], dropout=s["lstm_dropout"],
                               l2_normalize_sums=bool(sums and s["pooling_l2_normalize"]), **_rnn_options(s, build),
                               **variant)


def _streams(s):
    """(name, width) of each --feature_names block: the streams of the two-stream poolings."""
    names = [n.strip() for n in str(s["feature_names"]).split(",") if n.strip()]
    return list(zip(names, _sizes(s["feature_sizes"])))


def _willow(s, encoder, cluster_key, hidden_key, relu_key, audio_divisor=2, **options):
    """WILLOW's two-stream pooling: `encoder` with K clusters on the first stream, K / audio_divisor on the others
    (their NetVLAD / NetFV: K/2; their Soft-DBoW: K/8)."""
    k = _get(s, cluster_key)
    streams = _streams(s)
    encoders = [encoder(k if i == 0 else max(1, k // audio_divisor), name=f"{name}_{encoder.__name__.lower()}",
                        **options) for i, (name, _) in enumerate(streams)]
    return pooling.LearnablePooling(encoders, [size for _, size in streams], hidden_size=_get(s, hidden_key),
                                    relu=_get(s, relu_key), gating=_get(s, "gating"), sample_frames=s["iterations"],
                                    sample_random_frames=s["sample_random_frames"])


def _nextvlad_args(s):
    return dict(feature_sizes=_sizes(s["feature_sizes"]), cluster_size=_get(s, "nextvlad_cluster_size"),
                groups=_get(s, "groups"), expansion=_get(s, "expansion"), hidden_size=_get(s, "nextvlad_hidden_size"),
                gating_reduction=_get(s, "gating_reduction"), dropout=_get(s, "drop_rate"))


def _recurrent(s, build, cell, **options):
    """A RecurrentPooling of `cell` sized by --gru_cells / --gru_layers or --lstm_cells / --lstm_layers."""
    if cell == "gru":
        units, layers = _get(s, "gru_cells"), _get(s, "gru_layers")
    else:
        units, layers = s["lstm_cells"], s["lstm_layers"]
    return pooling.RecurrentPooling(cell, units=units, num_layers=layers, **_rnn_options(s, build), **options)


# Frame-level poolings g (paper 2.2 and the starter-code baselines): name -> builder(settings, build options).
POOLINGS = {
    "FrameLevelLogisticModel": lambda s, b: pooling.MeanPooling(),
    "MeanPoolingModel": lambda s, b: pooling.MeanPooling(),
    "MaxPoolingModel": lambda s, b: pooling.MaxPooling(),
    "DbofModel": lambda s, b: pooling.DBoFPooling(
        cluster_size=s["dbof_cluster_size"], hidden_size=s["dbof_hidden_size"],
        add_batch_norm=s["dbof_add_batch_norm"], pooling_method=s["dbof_pooling_method"],
        activation=_get(s, "dbof_activation"), sample_frames=s["iterations"],
        sample_random_frames=s["sample_random_frames"], context_gate=_get(s, "use_context_gate_cluster_layer"),
        context_gate_bottleneck_size=_get(s, "context_gate_cluster_bottleneck_size")),
    # LstmModel: the starter code's, every layer's (c_T, s_T); with lstm_layers=1 the paper's "LSTM" (2d).
    "LstmModel": lambda s, b: _lstm(s, b, all_layer_states=True),
    "LstmMModel": lambda s, b: _lstm(s, b, use_input_sum=True),
    "LstmMOModel": lambda s, b: _lstm(s, b, use_input_sum=True, use_output_sum=True),
    "LstmMOLNModel": lambda s, b: _lstm(s, b, use_input_sum=True, use_output_sum=True, layer_norm=True),
    "CnnModel": lambda s, b: pooling.TemporalCNNPooling(filters=s["cnn_filters"],
                                                       l2_normalize=s["pooling_l2_normalize"]),
    "PositionEncodingModel": lambda s, b: pooling.PositionEncodingPooling(
        length=s["position_encoding_length"], fixed_length=s["max_frames"], l2_normalize=s["pooling_l2_normalize"]),
    "IndirectClusteringModel": lambda s, b: pooling.IndirectClusteringPooling(
        l2_normalize=s["pooling_l2_normalize"]),
    "AdaptiveNoiseModel": lambda s, b: pooling.AdaptiveNoisePooling(
        num_classes=s["num_classes"], class_counts=b.get("class_counts"), scale=s["noise_scale"]),
    # The competition winners (docs/MODELS.md). WILLOW 2017: two-stream clustering poolings, their GRU.
    "NetVLADModel": lambda s, b: _willow(s, pooling.NetVLAD, "netvlad_cluster_size", "netvlad_hidden_size",
                                         "netvlad_relu"),
    "NetRVLADModel": lambda s, b: _willow(s, pooling.NetRVLAD, "netvlad_cluster_size", "netvlad_hidden_size",
                                          "netvlad_relu"),
    "NetFVModel": lambda s, b: _willow(s, pooling.NetFV, "fv_cluster_size", "fv_hidden_size", "fv_relu",
                                       couple_weights=_get(s, "fv_couple_weights")),
    "SoftDBoWModel": lambda s, b: _willow(s, pooling.SoftDBoW, "dbof_cluster_size", "dbof_hidden_size", "dbof_relu",
                                          audio_divisor=8, max_pool=_get(s, "softdbof_maxpool")),
    "GruModel": lambda s, b: _recurrent(s, b, "gru"),
    # NeXtVLAD 2018 (3rd place); the 2018 1st place's bidirectional RNNs.
    "NeXtVLADModel": lambda s, b: pooling.NeXtVLADPooling(**_nextvlad_args(s)),
    "BiGruModel": lambda s, b: _recurrent(s, b, "gru", gating=_get(s, "gating"), bidirectional=True,
                                          all_layer_states=False),
    "BiLstmModel": lambda s, b: _recurrent(s, b, "lstm", bidirectional=True, all_layer_states=False),
}

# Classifiers h: name -> builder(settings). FrameLevelLogisticModel always uses LogisticModel.
CLASSIFIERS = {
    "LogisticModel": lambda s: classifiers.Logistic(
        s["num_classes"], l2_penalty=s["l2_penalty"], bias_initializer_value=s["output_bias_init"]),
    "MoeModel": lambda s: classifiers.MoE(
        s["num_classes"], num_mixtures=s["moe_num_mixtures"], l2_penalty=s["l2_penalty"],
        hidden_size=s["moe_hidden_size"] or None, expert_bias_initializer_value=s["output_bias_init"],
        prob_gating=_get(s, "moe_prob_gating"), input_context_gate=_get(s, "use_input_context_gate"),
        output_context_gate=_get(s, "use_output_context_gate")),
    # The output bias exists only when --output_bias_init is set (the original `NN` has none).
    "MlpModel": lambda s: classifiers.MLP(
        s["num_classes"], hidden_sizes=_sizes(s["mlp_hidden_sizes"]), layer_norm=s["mlp_layer_norm"],
        dropout=s["mlp_dropout"], l2_penalty=s["l2_penalty"], activation=_get(s, "mlp_activation"),
        input_noise=_get(s, "mlp_input_noise"), use_output_bias=bool(s["output_bias_init"]),
        output_bias_initializer_value=s["output_bias_init"]),
}


def _member(name, s):
    """h by name, wrapped in the k-NN memory when --knn_memory_size is set."""
    h = CLASSIFIERS[name](s)
    if not _get(s, "knn_memory_size"):
        return h
    h.name = "head"  # a fixed name: weight paths are checkpoint keys
    return KnnMemory(h, s["num_classes"], memory_size=_get(s, "knn_memory_size"), k=_get(s, "knn_k"),
                     temperature=_get(s, "knn_temperature"), weight=_get(s, "knn_weight"),
                     output_weight=_get(s, "knn_output_weight"), output_temperature=_get(s, "knn_output_temperature"))


def _classifier(name, s):
    """h, or --ensemble_members independent copies of it averaged (classifiers.Ensemble)."""
    count = _get(s, "ensemble_members")
    if count == 1:
        return _member(name, s)
    members = [_member(name, s) for _ in range(count)]
    for i, member in enumerate(members):
        member.name = f"member_{i}"
    return classifiers.Ensemble(members)

# Heads that read the frames themselves (paper 2.3.1): no pooling g.
FRAME_HEADS = {
    "ManyToManyModel": lambda s, b: classifiers.ManyToMany(
        s["num_classes"], units=s["lstm_cells"], l2_penalty=s["l2_penalty"],
        use_cudnn=False if b.get("jit_compile") else "auto"),
    # NeXtVLAD's mixture with a gate on the mean frame (Lin et al. 2018, 3.4); trained with online distillation.
    "MixNeXtVLADModel": lambda s, b: classifiers.NeXtVLADMixture(
        [pooling.NeXtVLADPooling(**_nextvlad_args(s), name=f"branch_{m}") for m in range(_get(s, "mix_number"))],
        [classifiers.Logistic(s["num_classes"], l2_penalty=s["l2_penalty"],
                              bias_initializer_value=s["output_bias_init"], name=f"branch_{m}_logistic")
         for m in range(_get(s, "mix_number"))]),
}

RECURRENT_POOLINGS = ("LstmModel", "LstmMModel", "LstmMOModel", "LstmMOLNModel", "GruModel", "BiGruModel",
                      "BiLstmModel")
MODEL_NAMES = sorted(POOLINGS) + sorted(CLASSIFIERS) + sorted(FRAME_HEADS)
FIXED_POOLINGS = ("MeanPoolingModel", "MaxPoolingModel")  # no weights: a video's pooled input never changes


class ModelSettingsError(ValueError):
    """Settings that name no model or do not fit together; one line listing the valid choices."""


def check_settings(settings):
    name = settings["model"]
    if name not in MODEL_NAMES:
        raise ModelSettingsError(f"unknown --model '{name}'; valid: {', '.join(MODEL_NAMES)}")
    frame_model = name in POOLINGS or name in FRAME_HEADS
    if frame_model and not settings["frame_features"]:
        raise ModelSettingsError(f"--model {name} reads frames: pass --frame_features "
                                 "(and --feature_names=rgb,audio)")
    if name in CLASSIFIERS and settings["frame_features"]:
        raise ModelSettingsError(f"--model {name} is a video-level model; for frame-level data pick a pooling "
                                 f"model and --video_level_classifier_model={name}")
    if settings["video_level_classifier_model"] not in CLASSIFIERS:
        raise ModelSettingsError(f"unknown --video_level_classifier_model "
                                 f"'{settings['video_level_classifier_model']}'; valid: {', '.join(CLASSIFIERS)}")
    if name in FRAME_HEADS and settings.get("center_loss_lambda"):
        raise ModelSettingsError(f"--center_loss_lambda needs a pooled embedding; {name} has none")
    if name == "MixNeXtVLADModel" and (settings["label_beta"] or settings["label_gamma"]
                                       or settings["label_alpha"] != 1.0):
        raise ModelSettingsError(f"--label_alpha/beta/gamma (label processing) do not apply to {name}: its "
                                 "training outputs are logits mixed before the sigmoid")
    _check_winners_settings(settings)
    if _get(settings, "ensemble_members") < 1 or (name in FRAME_HEADS and _get(settings, "ensemble_members") > 1):
        raise ModelSettingsError(f"--ensemble_members {_get(settings, 'ensemble_members')}: needs at least 1, and "
                                 f"exactly 1 for {name}")
    if _get(settings, "knn_memory_size"):
        if _classifier_name(settings) != "MlpModel":
            raise ModelSettingsError("--knn_memory_size needs MlpModel as the classifier (--model=MlpModel, or "
                                     "--video_level_classifier_model=MlpModel under a pooling model)")
        if name in POOLINGS and name not in FIXED_POOLINGS:
            raise ModelSettingsError(f"--knn_memory_size recognises a training video by its pooled input, which "
                                     f"the trainable pooling of --model {name} changes every step (each epoch "
                                     f"would add every video again); use it with --model=MlpModel or under "
                                     f"{' / '.join(sorted(FIXED_POOLINGS))}")
        if _get(settings, "knn_k") > _get(settings, "knn_memory_size"):
            raise ModelSettingsError(f"--knn_k {_get(settings, 'knn_k')} is larger than --knn_memory_size "
                                     f"{_get(settings, 'knn_memory_size')}")
        if _get(settings, "knn_weight") + _get(settings, "knn_output_weight") > 1.0:
            raise ModelSettingsError(f"--knn_weight {_get(settings, 'knn_weight')} + --knn_output_weight "
                                     f"{_get(settings, 'knn_output_weight')} is more than 1")
    loss_kwargs(settings)  # the loss options fit --label_loss: raises before train.py writes --train_dir


def memory_bytes(settings, slots):
    """Bytes of the k-NN memories (`KnnMemory`: keys, label ids, fingerprints, output keys) of `slots` videos, all
    members: what every checkpoint and export holds."""
    hidden = _sizes(settings["mlp_hidden_sizes"])
    width = hidden[-1] if hidden else sum(_sizes(settings["feature_sizes"]))
    per_slot = KnnMemory.slot_bytes(width, settings["num_classes"],
                                                output_weight=_get(settings, "knn_output_weight"))
    return per_slot * slots * _get(settings, "ensemble_members")


def check_memory_capacity(settings, num_examples):
    """A k-NN memory with fewer slots than training videos would keep only the most recent ones (a ring): refused
    before training, with the choices and their cost."""
    slots = _get(settings, "knn_memory_size")
    if not slots or num_examples <= slots:
        return
    raise ModelSettingsError(
        f"--knn_memory_size {slots} is smaller than the {num_examples} training videos: the memory would keep only "
        f"the last {slots / num_examples:.1%} of them. Choose --knn_memory_size={num_examples} (about "
        f"{memory_bytes(settings, num_examples) / 2**30:.1f} GiB in every checkpoint and export, and a vote over "
        "all of them per batch: docs/MODELS.md), --knn_memory_size=0 (no memory), or train on fewer videos")


def _check_winners_settings(settings):
    """The shapes the competition winners' layers need: NeXtVLAD's groups divide each expanded stream (the first
    stream gets --groups, the others half), SE gating keeps a bottleneck, bidirectional layers split evenly."""
    name = settings["model"]
    if name in ("NeXtVLADModel", "MixNeXtVLADModel"):
        groups, expansion = _get(settings, "groups"), _get(settings, "expansion")
        for i, size in enumerate(_sizes(settings["feature_sizes"])):
            stream_groups = groups if i == 0 else groups // 2
            if stream_groups < 1 or (expansion * size) % stream_groups:
                raise ModelSettingsError(f"--groups {groups}: stream {i} (width {size} x --expansion {expansion}) "
                                         f"needs {stream_groups} groups to divide it (audio streams get half)")
        if _get(settings, "nextvlad_hidden_size") // _get(settings, "gating_reduction") < 1:
            raise ModelSettingsError(f"--gating_reduction {_get(settings, 'gating_reduction')} is larger than "
                                     f"--nextvlad_hidden_size {_get(settings, 'nextvlad_hidden_size')}")
    if _get(settings, "lstm_random_sequence") and name not in RECURRENT_POOLINGS:
        raise ModelSettingsError(f"--lstm_random_sequence feeds sampled frames to a recurrent pooling "
                                 f"({', '.join(RECURRENT_POOLINGS)}); --model is {name}")
    if _get(settings, "use_context_gate_cluster_layer") and name != "DbofModel":
        raise ModelSettingsError(f"--use_context_gate_cluster_layer gates DbofModel's cluster layer; --model is {name}")
    if _get(settings, "context_gate_cluster_bottleneck_size") and not _get(settings, "use_context_gate_cluster_layer"):
        raise ModelSettingsError("--context_gate_cluster_bottleneck_size shapes the gate of "
                                 "--use_context_gate_cluster_layer, which is off")
    for flag in ("use_input_context_gate", "use_output_context_gate"):
        if _get(settings, flag) and _classifier_name(settings) != "MoeModel":
            raise ModelSettingsError(f"--{flag} gates MoeModel; --model {name} classifies with "
                                     f"{_classifier_name(settings)}")
    if _get(settings, "use_output_context_gate") and _get(settings, "moe_prob_gating"):
        raise ModelSettingsError("--use_output_context_gate (Model Garden's) and --moe_prob_gating (WILLOW's) both "
                                 "gate MoeModel's probabilities: pick one")
    units = {"BiGruModel": ("gru_cells", _get(settings, "gru_cells")),
             "BiLstmModel": ("lstm_cells", settings["lstm_cells"])}.get(name)
    if units and units[1] % 2:
        raise ModelSettingsError(f"--{units[0]} {units[1]}: {name}'s bidirectional layer splits it in two; pass an "
                                 "even number")


def _classifier_name(settings):
    """The classifier h of the settings' model (a frames-taking head names itself)."""
    name = settings["model"]
    if name in CLASSIFIERS or name in FRAME_HEADS:
        return name
    return "LogisticModel" if name == "FrameLevelLogisticModel" else settings["video_level_classifier_model"]


def needs_label_stats(settings):
    """Adaptive noise needs class counts S(y); label processing needs the correlation matrix M_c."""
    return settings["model"] == "AdaptiveNoiseModel" or bool(settings["label_beta"] or settings["label_gamma"])


def make_layers(settings, class_counts=None, jit_compile=False):
    """(g, h) of the settings, not built: g None for video-level models and frames-taking heads."""
    name = settings["model"]
    build = {"jit_compile": jit_compile, "class_counts": None if class_counts is None else list(class_counts)}
    if name in FRAME_HEADS:
        return None, FRAME_HEADS[name](settings, build)
    if name in CLASSIFIERS:
        return None, _classifier(name, settings)
    return POOLINGS[name](settings, build), _classifier(_classifier_name(settings), settings)


def model_parts(settings):
    """The parts (VideoClassifier attributes) a model of these settings has: g, h, C, input normalization."""
    check_settings(settings)
    parts = ["classifier"]
    if settings["model"] in POOLINGS:
        parts.append("pooling")
    if settings["label_beta"] or settings["label_gamma"] or settings["label_alpha"] != 1.0:
        parts.append("label_processing")
    if _get(settings, "input_normalization") != "none":
        parts.append("input_normalization")
    return parts


def build_model(settings, class_counts=None, correlation=None, jit_compile=False):
    """The VideoClassifier the settings describe. Label statistics are needed only to initialise a new model;
    a restored checkpoint carries them."""
    check_settings(settings)
    g, h = make_layers(settings, class_counts, jit_compile)
    c = None
    if settings["label_beta"] or settings["label_gamma"] or settings["label_alpha"] != 1.0:
        c = LabelProcessing(settings["num_classes"], alpha=settings["label_alpha"], beta=settings["label_beta"],
                            gamma=settings["label_gamma"], name="label_processing")
    # Fixed names give stable weight paths, the keys of checkpoints (train_dir.model_variables).
    h.name = "classifier"
    if g is not None:
        g.name = "pooling"
    normalization = None
    if _get(settings, "input_normalization") != "none":
        normalization = FeatureNormalization(_sizes(settings["feature_sizes"]), _get(settings, "input_normalization"),
                                             name="input_normalization")
    model = VideoClassifier(h, pooling=g, label_processing=c, input_normalization=normalization,
                            name="video_classifier")
    build_for_input(model, settings)
    if c is not None and correlation is not None:
        c.set_correlation(np.asarray(correlation, np.float32))
    return model


def build_center_loss(settings):
    if not settings.get("center_loss_lambda"):
        return None
    return MultiLabelCenterLoss(settings["num_classes"])


def distillation_kwargs(settings):
    """Keyword arguments of `losses.online_distillation_loss` for a model that trains with it
    (MixNeXtVLADModel: temperature --cl_temperature, weight --cl_lambda); None for every other model."""
    if settings["model"] != "MixNeXtVLADModel":
        return None
    return {"temperature": _get(settings, "cl_temperature"), "weight": _get(settings, "cl_lambda")}


def loss_kwargs(settings):
    kwargs = {"delta": settings["huber_delta"]} if settings["label_loss"] == "PseudoHuberLoss" else {}
    if _get(settings, "label_smoothing"):
        if settings["label_loss"] not in ("CrossEntropyLoss", "PseudoHuberLoss"):
            raise ModelSettingsError(f"--label_smoothing applies to CrossEntropyLoss and PseudoHuberLoss, not "
                                     f"{settings['label_loss']}")
        kwargs["label_smoothing"] = _get(settings, "label_smoothing")
    if _get(settings, "focal_gamma_neg"):
        if settings["label_loss"] != "CrossEntropyLoss":
            raise ModelSettingsError(f"--focal_gamma_neg applies to CrossEntropyLoss, not {settings['label_loss']}")
        kwargs["focal_gamma_neg"] = _get(settings, "focal_gamma_neg")
    return kwargs


def dummy_batch(settings, batch_size=2):
    """A zero batch of the model's input shapes (builds weights; traces export signatures)."""
    dim = sum(_sizes(settings["feature_sizes"]))
    shape = (batch_size, settings["max_frames"], dim) if settings["frame_features"] else (batch_size, dim)
    return {"video_matrix": np.zeros(shape, np.float32), "num_frames": np.ones((batch_size,), np.int32),
            "labels": np.zeros((batch_size, settings["num_classes"]), np.float32)}


def build_for_input(model, settings, center_loss=None):
    """Creates every weight by calling the model (and the center loss) once on a dummy batch."""
    batch = dummy_batch(settings)
    outputs = model(batch, training=False)
    if center_loss is not None:
        center_loss(outputs["embedding"], batch["labels"], training=False)


def make_reader(settings, segment_labels=False):
    """The reader of a model's input. Frames stay uint8 until the model's first op dequantizes them on the
    accelerator (4x less host-to-device traffic)."""
    return readers.get_reader(settings["frame_features"], settings["feature_names"], settings["feature_sizes"],
                              settings["num_classes"], settings["max_frames"], segment_labels=segment_labels,
                              quantized=bool(settings["frame_features"]))
