"""Presets of the competition winners' published configurations (merged into `yt8m_tf.presets.PRESETS`).

Each row: the preset (flag values, as the authors' command lines and papers set them), the published GAP with what
it was measured on, the data release, and the published parameter count. docs/MODELS.md lists them with the
commands; tests/test_competition_presets.py trains every one for 2 steps.

Sources: WILLOW (Miech et al. 2017, 1st of 650 in 2017): antoine77340/Youtube-8M-WILLOW README commands and
train.py defaults (Adam, lr decay 0.9 every 4M examples, 15 epochs unless a command says otherwise). NeXtVLAD
(Lin et al. 2018, 3rd of 394 in 2018): the paper's section 4.2 (Adam 2e-4, batch 160, l2 1e-5 on the classifier,
dropout 0.5; final models 15 epochs with lr x0.9 every 2.5M examples) and Tables 1-2. Skalic & Austin (1st of 394
in 2018, "Next top GB model"): miha-skalic/youtube8mchallenge runme.md commands and train.py defaults (Adam, lr x0.95
every 4M examples; `--batch_size` per GPU tower, 2 towers). Model Garden: tensorflow/models
official/projects/yt8m/configs/yt8m.py (`DbofModel`, `MoeModel`, `yt8m_experiment`).
"""

FRAME_INPUT = {"frame_features": True, "feature_names": "rgb,audio", "feature_sizes": "1024,128", "max_frames": 300}

# ---- WILLOW 2017 ----------------------------------------------------------------------------------------------
# Every README command: --batch_size=80 --base_learning_rate=0.0002 --iterations=300 (sampled frames) --moe_l2=1e-6
# (MoE's L2, our --l2_penalty) and the two-stream models with MoE-2 (WILLOW's default --moe_num_mixtures).
WILLOW_TRAINING = {"optimizer": "AdamOptimizer", "batch_size": 80, "base_learning_rate": 0.0002,
                   "learning_rate_decay": 0.9, "learning_rate_decay_examples": 4000000, "num_epochs": 15}
WILLOW_CLUSTERING = {**FRAME_INPUT, **WILLOW_TRAINING, "iterations": 300, "sample_random_frames": True,
                     "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2, "l2_penalty": 1e-6}
GATED = {"gating": True, "moe_prob_gating": True, "learning_rate_decay": 0.8}

# ---- NeXtVLAD 2018 --------------------------------------------------------------------------------------------
NEXTVLAD_TRAINING = {"optimizer": "AdamOptimizer", "batch_size": 160, "base_learning_rate": 0.0002,
                     "learning_rate_decay": 0.9, "learning_rate_decay_examples": 2500000, "num_epochs": 15}
NEXTVLAD = {**FRAME_INPUT, **NEXTVLAD_TRAINING, "video_level_classifier_model": "LogisticModel",
            "l2_penalty": 1e-5, "nextvlad_cluster_size": 112, "groups": 8, "expansion": 2,
            "nextvlad_hidden_size": 2048, "gating_reduction": 16, "drop_rate": 0.5}


# ---- 2018 1st place (Skalic & Austin) ----------------------------------------------------------------------------
# runme.md: --batch_size=256 --num_gpu 2 (the starter's per-tower batch: 512 in all) --base_learning_rate=0.0002
# --lstm_cells=1024 --num_epochs=7; the starter's lr decay and MoE defaults (MoE-2, --moe_l2=1e-8).
SKALIC_TRAINING = {"optimizer": "AdamOptimizer", "batch_size": 512, "base_learning_rate": 0.0002,
                   "learning_rate_decay": 0.95, "learning_rate_decay_examples": 4000000, "num_epochs": 7}
SKALIC = {**FRAME_INPUT, **SKALIC_TRAINING, "l2_penalty": 1e-8, "moe_num_mixtures": 2}


def _row(preset, gap=None, measured_on="", data="", parameters=None):
    return {"preset": preset, "gap": gap, "measured_on": measured_on, "data": data, "parameters": parameters}


ROWS = {
    # The best single model (README: "The best single model is this one but with the flag --max_step=300000").
    "willow/netvlad-gated": _row(
        {**WILLOW_CLUSTERING, **GATED, "model": "NetVLADModel", "netvlad_cluster_size": 256,
         "netvlad_hidden_size": 1024, "netvlad_relu": False, "max_steps": 300000},
        data="2017 (4716 classes)"),
    "willow/netrvlad-gated": _row(
        {**WILLOW_CLUSTERING, **GATED, "model": "NetRVLADModel", "netvlad_cluster_size": 256,
         "netvlad_hidden_size": 1024, "netvlad_relu": False, "max_steps": 600000},
        data="2017 (4716 classes)"),
    "willow/netfv-gated": _row(
        {**WILLOW_CLUSTERING, **GATED, "model": "NetFVModel", "fv_cluster_size": 128, "fv_hidden_size": 1024,
         "fv_relu": False, "fv_couple_weights": False, "max_steps": 600000},
        data="2017 (4716 classes)"),
    "willow/soft-dbow": _row(
        {**WILLOW_CLUSTERING, "model": "SoftDBoWModel", "dbof_cluster_size": 8000, "dbof_hidden_size": 1024,
         "dbof_relu": False, "l2_penalty": 1e-8, "max_steps": 800000},
        data="2017 (4716 classes)"),
    "willow/gru": _row(
        {**FRAME_INPUT, **WILLOW_TRAINING, "model": "GruModel", "gru_cells": 1200, "gru_layers": 2,
         "batch_size": 128, "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2, "l2_penalty": 1e-6,
         "max_steps": 300000},
        data="2017 (4716 classes)"),
    "willow/lstm": _row(
        {**FRAME_INPUT, **WILLOW_TRAINING, "model": "LstmModel", "lstm_cells": 1024, "lstm_layers": 2,
         "batch_size": 128, "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2, "l2_penalty": 1e-8,
         "iterations": 150, "lstm_random_sequence": True, "max_steps": 400000},
        data="2017 (4716 classes)"),
    "nextvlad/single": _row(
        {**NEXTVLAD, "model": "NeXtVLADModel"},
        gap=0.87846, measured_on="Kaggle 2018 private leaderboard (one branch of the 3-model mixture, 460k steps)",
        data="2018 (3862 classes)", parameters=79e6),
    "nextvlad/k128": _row(
        {**NEXTVLAD, "model": "NeXtVLADModel", "nextvlad_cluster_size": 128, "gating_reduction": 8,
         "learning_rate_decay": 0.8, "learning_rate_decay_examples": 2000000, "num_epochs": 5},
        gap=0.8723, measured_on="local validation (paper Table 1: 5 epochs, lr x0.8 every 2M examples)",
        data="2018 (3862 classes)", parameters=89e6),
    "nextvlad/mix3": _row(
        {**NEXTVLAD, "model": "MixNeXtVLADModel", "mix_number": 3, "cl_temperature": 3.0, "cl_lambda": 9.0},
        gap=0.88722, measured_on="Kaggle 2018 private leaderboard (paper Table 2, 460k steps)",
        data="2018 (3862 classes)", parameters=237e6),
    # Their Lstmbidirect: a bidirectional LSTM of 2 x 512, then an LSTM of 1024; the top cell state c classified.
    "skalic/bilstm": _row(
        {**SKALIC, "model": "BiLstmModel", "lstm_cells": 1024, "lstm_layers": 2,
         "video_level_classifier_model": "LogisticModel"},
        data="2018 (3862 classes)"),
    "skalic/bilstm-moe": _row(
        {**SKALIC, "model": "BiLstmModel", "lstm_cells": 1024, "lstm_layers": 2,
         "video_level_classifier_model": "MoeModel"},
        data="2018 (3862 classes)"),
    # Their gated GRUbidirect ("Gated GRU model"): GRUs as above (width from --lstm_cells), Context Gating of the
    # top state, MoE with WILLOW's probability gating.
    "skalic/bigru-gated": _row(
        {**SKALIC, "model": "BiGruModel", "gru_cells": 1024, "gru_layers": 2, "gating": True,
         "video_level_classifier_model": "MoeModel", "moe_prob_gating": True},
        data="2018 (3862 classes)"),
    # Model Garden's DBoF (official TF2 port): DbofModel + MoeModel defaults and yt8m_experiment's trainer
    # (TPU batch 32 x 32 = 1024, lr 1e-4 x 1024/512, x0.95 every 1.5 epochs of 3,888,919 videos, 500 warmup steps,
    # 100 epochs, L2 1e-5, Keras Adam epsilon 1e-7). Its optional context gates are off by default, as here.
    "garden/dbof": _row(
        {**FRAME_INPUT, "model": "DbofModel", "dbof_cluster_size": 3000, "dbof_hidden_size": 2000,
         "dbof_add_batch_norm": True, "dbof_pooling_method": "average", "dbof_activation": "relu",
         "iterations": 300, "sample_random_frames": True, "input_normalization": "l2",
         "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 5, "l2_penalty": 1e-5,
         "optimizer": "AdamOptimizer", "adam_epsilon": 1e-7, "batch_size": 1024, "base_learning_rate": 0.0002,
         "learning_rate_decay": 0.95, "learning_rate_decay_examples": 5833378, "warmup_steps": 500,
         "num_epochs": 100},
        data="2018 (3862 classes)"),
}

PRESETS = {name: row["preset"] for name, row in ROWS.items()}

# The WILLOW ensemble (25 models, the README's seven main ones among them): 0.84967 private GAP, Kaggle 2017.
WILLOW_ENSEMBLE_GAP = 0.84967
