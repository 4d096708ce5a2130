"""Helpers for tests that run the command-line programs: tiny official-format data and subprocess runs."""

import os
import subprocess
import sys

from yt8m_tf import synthetic

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
