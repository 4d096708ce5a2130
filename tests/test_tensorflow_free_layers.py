"""The layers run where TensorFlow is absent (bench/gpu_step.py on the JAX backend): no module of the layer packages
imports it; the TF-only ones (the k-NN memory, the center loss) are imported where they are used."""

import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `import tensorflow` fails for every importer inside yt8m_tf (Keras may still load its own backend here: this
# machine has no JAX; on the GPU machine Keras runs on JAX and nothing imports TensorFlow).
SCRIPT = textwrap.dedent("""
    import builtins, sys
    real_import = builtins.__import__

    def blocked(name, globals=None, locals=None, fromlist=(), level=0):
        importer = (globals or {}).get("__name__", "")
        if importer.startswith("yt8m_tf") and name.split(".")[0] == "tensorflow":
            raise ImportError(f"{importer} imports {name}")
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = blocked
    import yt8m_tf.classifiers, yt8m_tf.label_processing, yt8m_tf.losses, yt8m_tf.model, yt8m_tf.pooling
    from yt8m_tf.classifiers import CLASSIFIERS, Ensemble, MoE
    from yt8m_tf.pooling import LSTMPooling
    for tf_only in ("yt8m_tf.classifiers.memory", "yt8m_tf.center_loss"):
        assert tf_only not in sys.modules, tf_only
        try:
            __import__(tf_only)
        except ImportError as e:
            print("blocked:", e)
""")


def test_layer_packages_import_without_tensorflow():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow"))
    assert result.returncode == 0, result.stderr[-2000:]
    # The guard works: the TF-only modules are refused.
    assert result.stdout.splitlines() == ["blocked: yt8m_tf.classifiers.memory imports tensorflow",
                                          "blocked: yt8m_tf.center_loss imports tensorflow"]
