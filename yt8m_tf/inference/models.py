"""The models inference.py predicts with: each --train_dir is a directory train.py wrote (model_flags.json and
checkpoints; its latest checkpoint is used) or one of its exports (train_dir/export/step_N: a SavedModel with its
model_flags.json, whose weights are read as a checkpoint)."""

import collections

from yt8m_tf.training import export, train_dir as train_dir_lib

# Where a loaded model came from: its directory, whether it is an export, and its step (None: unknown).
Source = collections.namedtuple("Source", ["directory", "is_export", "step"])


def load(directory):
    """(model, settings, Source) of one --train_dir."""
    if export.is_export(directory):
        model, settings, step = export.load(directory)
        print(f"loaded {settings['model']} from the export '{directory}'"
              + (f" (step {step})" if step is not None else ""), flush=True)
        return model, settings, Source(directory, True, step)
    model, settings, step = train_dir_lib.load_trained_model(directory)
    print(f"loaded {settings['model']} from '{directory}' (step {step})", flush=True)
    return model, settings, Source(directory, False, step)


def load_all(directories):
    """([models], [settings], [Source]) of the listed directories, in order."""
    loaded = [load(directory) for directory in directories]
    return [m for m, _, _ in loaded], [s for _, s, _ in loaded], [src for _, _, src in loaded]
