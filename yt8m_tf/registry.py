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
    "focal_gamma_neg": 0.0, "knn_output_weight": 0.0, "knn_output_temperature": 0.02,
}


def _get(s, name):
    return s.get(name, LATER_DEFAULTS.get(name))


def _sizes(text):
    return tuple(int(s) for s in str(text).split(",") if s.strip())


def _lstm(s, build, **variant):
    sums = variant.get("use_input_sum") or variant.get("use_output_sum")
    return pooling.LSTMPooling(units=s["lstm_cells"], num_layers=s["lstm_layers"], dropout=s["lstm_dropout"],
                               l2_normalize_sums=bool(sums and s["pooling_l2_normalize"]),
                               use_cudnn=False if build.get("jit_compile") else "auto", **variant)


# Frame-level poolings g (paper 2.2 and the starter-code baselines): name -> builder(settings, build options).
POOLINGS = {
    "FrameLevelLogisticModel": lambda s, b: pooling.MeanPooling(),
    "MeanPoolingModel": lambda s, b: pooling.MeanPooling(),
    "MaxPoolingModel": lambda s, b: pooling.MaxPooling(),
    "DbofModel": lambda s, b: pooling.DBoFPooling(
        cluster_size=s["dbof_cluster_size"], hidden_size=s["dbof_hidden_size"],
        add_batch_norm=s["dbof_add_batch_norm"], pooling_method=s["dbof_pooling_method"],
        sample_frames=s["iterations"], sample_random_frames=s["sample_random_frames"]),
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
}

# Classifiers h: name -> builder(settings). FrameLevelLogisticModel always uses LogisticModel.
CLASSIFIERS = {
    "LogisticModel": lambda s: classifiers.Logistic(
        s["num_classes"], l2_penalty=s["l2_penalty"], bias_initializer_value=s["output_bias_init"]),
    "MoeModel": lambda s: classifiers.MoE(
        s["num_classes"], num_mixtures=s["moe_num_mixtures"], l2_penalty=s["l2_penalty"],
        hidden_size=s["moe_hidden_size"] or None, expert_bias_initializer_value=s["output_bias_init"]),
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
                                 output_weight=_get(s, "knn_output_weight"),
                                 output_temperature=_get(s, "knn_output_temperature"))


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
}

MODEL_NAMES = sorted(POOLINGS) + sorted(CLASSIFIERS) + sorted(FRAME_HEADS)


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
    head = name if name in CLASSIFIERS else settings["video_level_classifier_model"]
    if _get(settings, "ensemble_members") < 1 or (name in FRAME_HEADS and _get(settings, "ensemble_members") > 1):
        raise ModelSettingsError(f"--ensemble_members {_get(settings, 'ensemble_members')}: needs at least 1, and "
                                 f"exactly 1 for {name}")
    if _get(settings, "knn_memory_size"):
        if name in FRAME_HEADS or name == "FrameLevelLogisticModel" or head != "MlpModel":
            raise ModelSettingsError("--knn_memory_size needs MlpModel as the classifier (--model=MlpModel, or "
                                     "--video_level_classifier_model=MlpModel under a pooling model)")
        if _get(settings, "knn_k") > _get(settings, "knn_memory_size"):
            raise ModelSettingsError(f"--knn_k {_get(settings, 'knn_k')} is larger than --knn_memory_size "
                                     f"{_get(settings, 'knn_memory_size')}")
        if _get(settings, "knn_weight") + _get(settings, "knn_output_weight") > 1.0:
            raise ModelSettingsError(f"--knn_weight {_get(settings, 'knn_weight')} + --knn_output_weight "
                                     f"{_get(settings, 'knn_output_weight')} is more than 1")
    loss_kwargs(settings)  # the loss options fit --label_loss: raises before train.py writes --train_dir


def needs_label_stats(settings):
    """Adaptive noise needs class counts S(y); label processing needs the correlation matrix M_c."""
    return settings["model"] == "AdaptiveNoiseModel" or bool(settings["label_beta"] or settings["label_gamma"])


def build_model(settings, class_counts=None, correlation=None, jit_compile=False):
    """The VideoClassifier the settings describe. Label statistics are needed only to initialise a new model;
    a restored checkpoint carries them."""
    check_settings(settings)
    name = settings["model"]
    build = {"jit_compile": jit_compile, "class_counts": None if class_counts is None else list(class_counts)}
    if name in FRAME_HEADS:
        g, h = None, FRAME_HEADS[name](settings, build)
    elif name in CLASSIFIERS:
        g, h = None, _classifier(name, settings)
    else:
        g = POOLINGS[name](settings, build)
        h = _classifier("LogisticModel" if name == "FrameLevelLogisticModel"
                        else settings["video_level_classifier_model"], settings)
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
