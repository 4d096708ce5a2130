"""Batch prediction to a Kaggle submission: the library behind inference.py (google/youtube-8m's flags).

`run_inference` (run.py) is the whole job; the parts, by role: plan.py (one input read for every model of an
ensemble, its weights), steps.py (the tf.functions that score a batch: whole videos or 5-frame segments),
passes.py (a pass over the data, written as CSV rows), models.py (models from a --train_dir or an export),
archive.py (--input_model_tgz / --output_model_tgz model archives).
"""

from yt8m_tf.inference.errors import InferenceError
from yt8m_tf.inference.run import run_inference

__all__ = ["InferenceError", "run_inference"]
