"""Classification layers h (paper 2.3): (B, d) pooled vector -> (B, num_classes) float32 probabilities.

`ManyToMany` reads the frames instead (`takes_frames = True`). `CLASSIFIERS` maps names to classes so a config
can choose one by name. `Ensemble` averages independently trained copies of a classifier; `NeXtVLADMixture`
(frames-taking, replaces g) is the gated mixture of NeXtVLAD models of Lin et al. 2018. `KnnMemory` wraps an
`MLP` (a k-NN vote over the training videos mixed into its output); it needs TensorFlow, which the other layers do
not (they also run on the JAX backend, bench/gpu_step.py), so it is imported from `yt8m_tf.classifiers.memory`
where it is used.
"""

from yt8m_tf.classifiers.ensemble import Ensemble
from yt8m_tf.classifiers.logistic import Logistic
from yt8m_tf.classifiers.many_to_many import ManyToMany
from yt8m_tf.classifiers.mlp import MLP
from yt8m_tf.classifiers.moe import MoE
from yt8m_tf.classifiers.nextvlad_mixture import NeXtVLADMixture
from yt8m_tf.classifiers.regularizers import slim_l2

CLASSIFIERS = {
    "Logistic": Logistic,
    "MoE": MoE,
    "MLP": MLP,
    "ManyToMany": ManyToMany,
}

__all__ = ["CLASSIFIERS", "Ensemble", "Logistic", "MLP", "ManyToMany", "MoE", "NeXtVLADMixture", "slim_l2"]
