"""Presets: plain dicts of flag values, one per row of the paper's Tables 1-5 plus recipes.

A preset sets defaults; flags given on the command line win (`yt8m_tf.flags.apply_preset`). Each table row fixes
the components the paper states for that table (section 3.2):
  Table 1 (pooling g):         h = MoE-2, no C, cross-entropy.
  Table 2 (classifier h):      g = Indirect Clustering, no C, cross-entropy.
  Table 3 (label processing):  g = Indirect Clustering, h = MoE-16, cross-entropy.
  Table 4 (loss L):            g = Indirect Clustering, h = MoE-16, no C.
and every row trains as section 2.6 says: Adam, lr 0.0006, betas 0.9/0.999, eps 1e-8, batch 128, lr x0.95 every 1.5M
examples, 5 epochs, on frame-level rgb+audio (1152-d frames). `paper_gap` is the GAP@20 the paper reports (Kaggle test
set, 2017 data); docs/MODELS.md lists them with the commands.

The competition winners' published configurations (WILLOW 2017, NeXtVLAD 2018, Model Garden's DBoF) are in
`yt8m_tf.competition_presets` and merged into PRESETS below.
"""

from yt8m_tf import competition_presets

PAPER_TRAINING = {
    "optimizer": "AdamOptimizer", "base_learning_rate": 0.0006, "adam_epsilon": 1e-8, "batch_size": 128,
    "learning_rate_decay": 0.95, "learning_rate_decay_examples": 1500000, "num_epochs": 5,
}

FRAME_INPUT = {"frame_features": True, "feature_names": "rgb,audio", "feature_sizes": "1024,128", "max_frames": 300}

LSTM = {"lstm_cells": 1152, "lstm_layers": 1}
MOE2 = {"video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2}
MOE16 = {"video_level_classifier_model": "MoeModel", "moe_num_mixtures": 16}
CLUSTERING = {"model": "IndirectClusteringModel"}


def _row(paper_gap, *parts):
    preset = {**PAPER_TRAINING, **FRAME_INPUT}
    for part in parts:
        preset.update(part)
    return preset, paper_gap


_ROWS = {
    "table1/lstm": _row(0.811, MOE2, LSTM, {"model": "LstmModel"}),
    "table1/lstm-m": _row(0.815, MOE2, LSTM, {"model": "LstmMModel", "pooling_l2_normalize": True}),
    "table1/lstm-m-o": _row(0.820, MOE2, LSTM, {"model": "LstmMOModel", "pooling_l2_normalize": True}),
    "table1/lstm-m-o-ln": _row(0.815, MOE2, LSTM, {"model": "LstmMOLNModel", "pooling_l2_normalize": True}),
    "table1/cnn-64": _row(0.704, MOE2, {"model": "CnnModel", "cnn_filters": 64, "pooling_l2_normalize": True}),
    "table1/cnn-256": _row(0.753, MOE2, {"model": "CnnModel", "cnn_filters": 256, "pooling_l2_normalize": True}),
    "table1/cnn-1024": _row(None, MOE2, {"model": "CnnModel", "cnn_filters": 1024, "pooling_l2_normalize": True}),
    "table1/position-encoding": _row(0.782, MOE2, {"model": "PositionEncodingModel", "pooling_l2_normalize": True}),
    "table1/indirect-clustering": _row(0.801, MOE2, CLUSTERING),
    "table1/adaptive-noise": _row(0.782, MOE2, {"model": "AdaptiveNoiseModel"}),
    "table2/many-to-many": _row(0.791, LSTM, {"model": "ManyToManyModel"}),
    "table2/moe2-2layer": _row(0.424, CLUSTERING, MOE2, {"moe_hidden_size": 2048}),
    "table2/moe16-2layer": _row(0.421, CLUSTERING, MOE16, {"moe_hidden_size": 2048}),
    "table2/mlp-4096": _row(0.802, CLUSTERING, {"video_level_classifier_model": "MlpModel",
                                                "mlp_hidden_sizes": "4096,4096,4096"}),
    "table2/mlp-4096-ln": _row(0.809, CLUSTERING, {"video_level_classifier_model": "MlpModel",
                                                   "mlp_hidden_sizes": "4096,4096,4096", "mlp_layer_norm": True}),
    **{f"table3/label-corr-{a}-{b}-{c}": _row(gap, CLUSTERING, MOE16, {"label_alpha": a, "label_beta": b,
                                                                       "label_gamma": c})
       for (a, b, c), gap in (((1.0, 0.3, 0.0), 0.784), ((1.0, 0.1, 0.0), 0.787), ((1.0, 0.0, 0.1), 0.788),
                              ((1.0, 0.01, 0.0), 0.790), ((1.0, 0.0, 0.01), 0.790), ((1.0, 0.01, 0.01), 0.788))},
    "table4/ce": _row(0.798, CLUSTERING, MOE16),
    "table4/center-0.001": _row(0.799, CLUSTERING, MOE16, {"center_loss_lambda": 0.001}),
    **{f"table4/huber-{delta}": _row(gap, CLUSTERING, MOE16, {"label_loss": "PseudoHuberLoss", "huber_delta": delta})
       for delta, gap in ((0.5, 0.803), (1.0, 0.801), (2.0, 0.798), (3.0, 0.794))},
    "final/lstm-m-o-moe2-huber": _row(0.820, MOE2, LSTM, {"model": "LstmMOModel", "pooling_l2_normalize": True,
                                                          "label_loss": "PseudoHuberLoss", "huber_delta": 0.5}),
}

PRESETS = {name: preset for name, (preset, _) in _ROWS.items()}
PAPER_GAP = {name: gap for name, (_, gap) in _ROWS.items()}
PRESETS["paper-training"] = dict(PAPER_TRAINING)
PRESETS.update(competition_presets.PRESETS)

# ---- video-level recipes tuned on the 28.8k real 2018 videos (docs/QUALITY.md has every ablation) ----------------
LOG_PRIOR = -6.907755  # log(1/1000): output logits start near the rare classes' prior

VIDEO_INPUT = {"frame_features": False, "feature_names": "mean_rgb,mean_audio", "feature_sizes": "1024,128"}

# Two independently trained copies (--ensemble_members=2, averaged) of one recipe: a 2048-wide MLP (layer norm, GELU,
# dropout 0.6) on per-feature L2-normalised input with Gaussian input noise, output bias at the prior, and a k-NN
# memory of the training videos mixed into its output (two votes: 0.2 over the hidden layer, 0.3 over the MLP's own
# predictions for the training videos); cross entropy with the negatives' terms weighted by p
# (--focal_gamma_neg=1); AdamW (decoupled weight decay 1.0 x lr) at 3e-3 with 50 warmup steps and x0.75 every 1.08
# epochs (25k examples of the 23,091-video tuning split: the schedule means the same on the 3.9M-video training
# set), batch 512, 10 epochs. About 7.5 minutes on 2 CPU cores for 28.8k videos (4.5-5.5 on a faster 2-core CPU);
# --ensemble_members=1 (one copy, about 0.002 GAP lower) takes half that.
PRESETS["video-best"] = {
    **VIDEO_INPUT, "model": "MlpModel", "mlp_hidden_sizes": "2048", "mlp_layer_norm": True, "mlp_activation": "gelu",
    "mlp_dropout": 0.6, "mlp_input_noise": 0.6, "input_normalization": "l2_scaled", "output_bias_init": LOG_PRIOR,
    "knn_memory_size": 32768, "knn_k": 50, "knn_temperature": 0.05, "knn_weight": 0.2,
    "knn_output_weight": 0.3, "knn_output_temperature": 0.02, "ensemble_members": 2,
    "label_loss": "CrossEntropyLoss", "focal_gamma_neg": 1.0,
    "optimizer": "adamw", "weight_decay": 1.0, "base_learning_rate": 0.003, "warmup_steps": 50,
    "learning_rate_decay": 0.75, "learning_rate_decay_epochs": 1.08, "batch_size": 512, "num_epochs": 10,
    "shuffle_buffer": 8192,
}


class PresetError(ValueError):
    """An unknown preset name; the message lists the valid ones."""


def get_preset(name):
    if name not in PRESETS:
        raise PresetError(f"unknown --preset '{name}'; valid: {', '.join(PRESETS)}")
    return dict(PRESETS[name])

# The starter-code MoeModel (MoE-2 on the concatenated features) made to train on small data: its expert biases
# start at the prior instead of 0 and the features are L2-normalised per feature; Adam 2e-3, batch 1024, 6 epochs.
# The starter's defaults (bias 0, raw features) leave it below logistic regression (docs/QUALITY.md).
PRESETS["video-moe"] = {
    **VIDEO_INPUT, "model": "MoeModel", "moe_num_mixtures": 2, "output_bias_init": LOG_PRIOR,
    "input_normalization": "l2_scaled", "label_loss": "CrossEntropyLoss",
    "optimizer": "AdamOptimizer", "base_learning_rate": 0.002, "batch_size": 1024, "num_epochs": 6,
}

# The 2019 segment task: a frame-level model trained on the 2018 video labels (e.g. --preset=nextvlad/single on the
# 2018 frame-level train files), then fine-tuned on the rated segments of the 2019 validate files:
#     python train.py --preset=segments/finetune --init_from=<its train_dir> --train_dir=... \
#         --train_data_pattern='.../2019/frame/validate*.tfrecord'
# (the model flags come from --init_from). Only the rated (segment, class) pairs enter the loss. A tenth of the
# 2018 NeXtVLAD learning rate, constant, 3 passes over the about 237k rated segments; not a published recipe
# (the 2019 winners fine-tuned with their own settings, which their write-ups give only in part).
PRESETS["segments/finetune"] = {
    "segment_labels": True, "base_learning_rate": 2e-5, "learning_rate_decay": 1.0, "batch_size": 256,
    "num_epochs": 3,
}
