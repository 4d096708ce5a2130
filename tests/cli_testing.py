"""Helpers for tests that run the command-line programs: tiny official-format data, subprocess runs, and the
expected values of their outputs computed here."""

import os
import subprocess
import sys

import numpy as np

from yt8m_tf import registry, synthetic
from yt8m_tf.training import train_dir as train_dir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RGB, AUDIO, CLASSES = 8, 4, 20

VIDEO_FLAGS = [f"--feature_names=mean_rgb,mean_audio", f"--feature_sizes={RGB},{AUDIO}", f"--num_classes={CLASSES}"]
FRAME_FLAGS = ["--frame_features", "--feature_names=rgb,audio", f"--feature_sizes={RGB},{AUDIO}",
               f"--num_classes={CLASSES}", "--max_frames=12"]


def write_data(directory, level="video", prefix="train", shards=2, videos=32, seed=0, **kwargs):
    kwargs = {"rgb_size": RGB, "audio_size": AUDIO, **kwargs}
    synthetic.write_dataset(str(directory), level=level, num_shards=shards, videos_per_shard=videos,
                            num_classes=CLASSES, min_frames=3, max_frames=15, seed=seed, prefix=prefix, **kwargs)
    return os.path.join(str(directory), f"{prefix}*.tfrecord")


def _environment(env):
    """The test process's environment, TensorFlow's C++ logs off unless `env` (which wins) says otherwise."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}


def run(script, *args, env=None, timeout=300, check=True):
    """Runs `python script args` from the repo root; returns the CompletedProcess (stdout+stderr as text)."""
    result = subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=REPO, env=_environment(env),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def start(script, *args, env=None):
    """Starts `python script args` in the background (stdout and stderr piped)."""
    return subprocess.Popen([sys.executable, os.path.join(REPO, script), *args], cwd=REPO, env=_environment(env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def final_weights(stdout):
    """The weights fingerprint train.py prints on its last line."""
    return float(stdout.strip().splitlines()[-1].rsplit("weights ", 1)[1])


def predictions_and_labels(train_dir, data_pattern):
    """The latest checkpoint's predictions and the labels of every video of `data_pattern`, in reading order."""
    model, settings, _ = train_dir_lib.load_trained_model(train_dir)
    predictions, labels = [], []
    for batch in registry.make_reader(settings).dataset(data_pattern, 64):
        inputs = {"video_matrix": batch["video_matrix"], "num_frames": batch["num_frames"]}
        predictions.append(model(inputs, training=False)["predictions"].numpy())
        labels.append(batch["labels"].numpy())
    return np.concatenate(predictions), np.concatenate(labels)


def gap_by_hand(predictions, labels, top_k=20):
    """GAP as the Kaggle metric defines it, with numpy: every video's top_k (score, is it a label) pairs pooled and
    sorted by descending score; the sum of the precision at each hit over the number of labels of all videos."""
    top = np.argsort(-predictions, axis=1, kind="stable")[:, :top_k]
    scores = np.take_along_axis(predictions, top, 1).ravel()
    hits = np.take_along_axis(labels, top, 1).ravel()[np.argsort(-scores, kind="stable")]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / labels.sum())
