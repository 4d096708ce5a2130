"""yt8m_tf/atomic.py: a file or directory is replaced only by a complete one; a failed write leaves the old one and
no temporary file. Remote paths (gs://) are reached through tf.io.gfile; they are tested on TensorFlow's in-memory
file system (ram://), which takes the same calls (GFile, rename with overwrite, remove) and cannot show what Cloud
Storage adds (a rename is a copy then a delete; permissions show at upload)."""

import os
import uuid

import numpy as np
import pytest
import tensorflow as tf

from yt8m_tf import atomic


def _listdir(directory):
    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(directory))


def _read(path, mode="r"):
    with tf.io.gfile.GFile(path, mode) as f:
        return f.read()


@pytest.fixture(params=["local", "ram"])
def directory(request, tmp_path):
    """An empty directory: local, or on TensorFlow's ram:// file system (the remote code path)."""
    if request.param == "local":
        return str(tmp_path)
    path = f"ram://atomic-{uuid.uuid4().hex[:8]}"
    tf.io.gfile.makedirs(path)
    return path


def test_a_file_is_replaced_only_when_complete(directory):
    path = os.path.join(directory, "out.csv")
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("old\n")
    for error in (RuntimeError, KeyboardInterrupt, SystemExit):  # SystemExit: SIGTERM in inference.py
        with pytest.raises(error):
            with atomic.AtomicFile(path, "w", "output file") as f:
                f.write("partial")
                raise error()
        assert _read(path) == "old\n" and _listdir(directory) == ["out.csv"]
    with atomic.AtomicFile(path, "w", "output file") as f:
        f.write("new\u00e9\n")
        assert _listdir(directory) == sorted(["out.csv", os.path.basename(f.name)])  # the temporary name
        assert os.path.basename(f.name).startswith(".out.csv.tmp-")
    assert _read(path, "rb") == "new\u00e9\n".encode("utf-8") and _listdir(directory) == ["out.csv"]
    array = np.arange(6, dtype=np.int64).reshape(2, 3)
    with atomic.AtomicFile(os.path.join(directory, "a.npy"), "wb") as f:  # binary, as label_stats writes
        np.save(f, array, allow_pickle=False)
    with tf.io.gfile.GFile(os.path.join(directory, "a.npy"), "rb") as f:
        np.testing.assert_array_equal(np.load(f, allow_pickle=False), array)


def test_bad_destinations_fail_on_entry_and_write_nothing(tmp_path):
    (tmp_path / "a_file").write_text("")
    cases = [
        (str(tmp_path / "missing" / "m.json"), f"--output_metrics '{tmp_path}/missing/m.json': its directory "
                                               f"'{tmp_path}/missing' does not exist"),
        (str(tmp_path), f"--output_metrics '{tmp_path}' is a directory; give a file name"),
        (str(tmp_path) + "/", f"--output_metrics '{tmp_path}/' is not a file name"),
        ("/proc/m.json", "cannot write --output_metrics '/proc/m.json': "),
    ]
    for path, message in cases:
        with pytest.raises(atomic.WriteError) as error:
            atomic.check_writable(path, "--output_metrics")
        assert str(error.value).startswith(message) and "\n" not in str(error.value)
    atomic.check_writable(str(tmp_path / "fine.json"), "--output_metrics")
    atomic.check_writable("", "--output_metrics")  # an unset flag
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_a_directory_is_replaced_only_when_complete(tmp_path):
    """Local only: ram:// renames a directory's own entry without its files (Cloud Storage renames every object
    under the prefix), so it cannot stand in for gs:// here."""
    directory = str(tmp_path)
    path = os.path.join(directory, "export", "step_5")
    with atomic.replaced_directory(path) as tmp:
        tf.io.gfile.makedirs(os.path.join(tmp, "variables"))
        with tf.io.gfile.GFile(os.path.join(tmp, "variables", "v"), "w") as f:
            f.write("first")
    with pytest.raises(RuntimeError):
        with atomic.replaced_directory(path) as tmp:
            tf.io.gfile.makedirs(tmp)
            with tf.io.gfile.GFile(os.path.join(tmp, "half"), "w") as f:
                f.write("half")
            raise RuntimeError()
    assert _listdir(os.path.join(directory, "export")) == ["step_5"]
    assert _listdir(path) == ["variables"] and _read(os.path.join(path, "variables", "v")) == "first"
    with atomic.replaced_directory(path) as tmp:
        tf.io.gfile.makedirs(tmp)
        with tf.io.gfile.GFile(os.path.join(tmp, "second"), "w") as f:
            f.write("2")
    assert _listdir(os.path.join(directory, "export")) == ["step_5"] and _listdir(path) == ["second"]
