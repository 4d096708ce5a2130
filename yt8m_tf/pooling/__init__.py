"""Video pooling layers g: (B, T, D) frames + (B,) num_frames -> (B, d), paper section 2.2.

Every layer has `output_dim(input_dim)` giving d for input width D.

| layer | paper | d |
|---|---|---|
| `LSTMPooling` | 2.2.1 LSTM / -M / -M-O / -M-O-LN (Eq. 1-6) | 2*units (+ D with M_l, + units with O_l) |
| `TemporalCNNPooling` | 2.2.2 CNN-64/256/1024 (Eq. 7) | filters |
| `PositionEncodingPooling` | 2.2.3 (Eq. 8-9) | D |
| `IndirectClusteringPooling` | 2.2.4 self-attention (Eq. 10) | D |
| `AdaptiveNoisePooling` | 2.2.5 (Eq. 11-12), takes labels | D |
| `MeanPooling`, `MaxPooling`, `DBoFPooling` | starter-code baselines | D, D, hidden_size |
| `LearnablePooling` with `NetVLAD`, `NetRVLAD`, `NetFV`, `SoftDBoW` | WILLOW (Miech et al. 2017) | hidden_size |
| `NeXtVLADPooling` (`NeXtVLAD` per stream, `SEContextGating`) | NeXtVLAD (Lin et al. 2018) | hidden_size |
| `RecurrentPooling` | WILLOW's GRU, the 2018 winners' bidirectional GRU / LSTM | units (x layers) |

`ContextGating` / `SEContextGating` / `GardenContextGate` are the gates of WILLOW / NeXtVLAD / Model Garden (also used
by `classifiers.MoE`).
"""

from yt8m_tf.pooling.adaptive_noise import AdaptiveNoisePooling
from yt8m_tf.pooling.attention import IndirectClusteringPooling
from yt8m_tf.pooling.baselines import DBoFPooling, MaxPooling, MeanPooling
from yt8m_tf.pooling.cnn import TemporalCNNPooling
from yt8m_tf.pooling.context_gating import ContextGating, GardenContextGate, SEContextGating
from yt8m_tf.pooling.frame_sampling import sample_random_frames, sample_random_sequence
from yt8m_tf.pooling.layer_norm_lstm_cell import LayerNormLSTMCell
from yt8m_tf.pooling.learnable import LearnablePooling
from yt8m_tf.pooling.lstm import LSTMPooling
from yt8m_tf.pooling.netvlad import NetFV, NetRVLAD, NetVLAD, SoftDBoW
from yt8m_tf.pooling.nextvlad import NeXtVLAD, NeXtVLADPooling
from yt8m_tf.pooling.position_encoding import PositionEncodingPooling
from yt8m_tf.pooling.recurrent import RecurrentPooling

__all__ = [
    "AdaptiveNoisePooling",
    "ContextGating",
    "DBoFPooling",
    "GardenContextGate",
    "IndirectClusteringPooling",
    "LSTMPooling",
    "LayerNormLSTMCell",
    "LearnablePooling",
    "MaxPooling",
    "MeanPooling",
    "NeXtVLAD",
    "NeXtVLADPooling",
    "NetFV",
    "NetRVLAD",
    "NetVLAD",
    "PositionEncodingPooling",
    "RecurrentPooling",
    "SEContextGating",
    "SoftDBoW",
    "TemporalCNNPooling",
    "sample_random_frames",
    "sample_random_sequence",
]
