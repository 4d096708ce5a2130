"""Input planning for an ensemble: one read of the input serves every model, each model gets its own view of the
batch (its features, at most its max_frames); the models' weights."""

import numpy as np
import tensorflow as tf

from readers.base import split_features
from yt8m_tf.inference.errors import InferenceError


def parse_weights(text, count):
    """'1,3' -> normalised float array; empty -> equal weights."""
    if not text or not str(text).strip():
        return np.full(count, 1.0 / count)
    try:
        weights = np.array([float(w) for w in str(text).split(",")], np.float64)
    except ValueError:
        raise InferenceError(f"--ensemble_weights '{text}' must be comma-separated numbers") from None
    if len(weights) != count:
        raise InferenceError(f"--ensemble_weights has {len(weights)} values but --train_dir lists {count} models")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        raise InferenceError(f"--ensemble_weights '{text}' must be non-negative with a positive sum")
    return weights / weights.sum()


def plan_input(settings_list, train_dirs):
    """One read for every model: returns (reader settings, per-model views).

    A view is (feature columns of the shared video_matrix or None when the model reads them all in order,
    the model's max_frames or None for video-level models). The models must agree on the level (frame/video), the
    number of classes and the size of every feature they share. Frame-level num_frames is the shortest of the read
    features' lengths (equal in the official files), so a model reading fewer features sees the same count.
    """
    levels = [bool(s["frame_features"]) for s in settings_list]
    if len(set(levels)) > 1:
        frame = [d for d, f in zip(train_dirs, levels) if f]
        video = [d for d, f in zip(train_dirs, levels) if not f]
        raise InferenceError(f"--train_dir mixes frame-level models ({', '.join(frame)}) and video-level models "
                             f"({', '.join(video)}); one pass reads one input layout: ensemble models of one level")
    classes = {int(s["num_classes"]) for s in settings_list}
    if len(classes) > 1:
        raise InferenceError("--train_dir models predict different numbers of classes ("
                             + ", ".join(f"{d}: {s['num_classes']}" for d, s in zip(train_dirs, settings_list)) + ")")
    names, sizes, owner = [], [], {}
    per_model = []
    for directory, settings in zip(train_dirs, settings_list):
        model_names, model_sizes = split_features(settings["feature_names"], settings["feature_sizes"])
        for name, size in zip(model_names, model_sizes):
            if name in owner and sizes[names.index(name)] != size:
                raise InferenceError(f"feature '{name}' has size {sizes[names.index(name)]} in the model of "
                                     f"'{owner[name]}' but {size} in the model of '{directory}': one read cannot "
                                     "serve both")
            if name not in owner:
                owner[name] = directory
                names.append(name)
                sizes.append(size)
        per_model.append(model_names)
    offsets = np.cumsum([0] + sizes)
    frame_level = levels[0]
    max_frames = max(int(s["max_frames"]) for s in settings_list)
    views = []
    for model_names, settings in zip(per_model, settings_list):
        columns = None
        if model_names != names:
            columns = np.concatenate([np.arange(offsets[names.index(n)], offsets[names.index(n) + 1])
                                      for n in model_names]).astype(np.int32)
        views.append((columns, int(settings["max_frames"]) if frame_level else None))
    reader_settings = {"frame_features": frame_level, "feature_names": ",".join(names),
                       "feature_sizes": ",".join(str(s) for s in sizes), "num_classes": classes.pop(),
                       "max_frames": max_frames}
    return reader_settings, views


def view(video_matrix, num_frames, model_view):
    """The batch as one model of the ensemble reads it (`model_view`, from plan_input): its features, at most its
    max_frames."""
    columns, max_frames = model_view
    if max_frames is not None and video_matrix.shape[1] > max_frames:
        video_matrix = video_matrix[:, :max_frames]
        num_frames = tf.minimum(num_frames, max_frames)
    if columns is not None:
        video_matrix = tf.gather(video_matrix, columns, axis=-1)
    return {"video_matrix": video_matrix, "num_frames": num_frames}
