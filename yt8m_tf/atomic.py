"""Atomic writes: the one way this project writes a file or a directory that a user may already have (submissions,
model_flags.json, metrics, class reports, label statistics, exports, model archives), local or on any
tf.io.gfile file system (gs://).

The content goes to a hidden temporary name beside the target (``.<name>.tmp-<pid>-<random>``) and is renamed over
the target once complete: `os.replace` after an fsync for local paths, ``tf.io.gfile.rename(..., overwrite=True)``
elsewhere. A reader never sees a partial file; a failed or interrupted write (any exception, Ctrl-C, SIGTERM turned
into SystemExit) leaves the old file untouched and removes the temporary one; a SIGKILL leaves at most the hidden
temporary file. On Cloud Storage a rename is a copy then a delete: the target still appears only when complete.
"""

import contextlib
import os
import shutil
import uuid

import tensorflow as tf


class WriteError(ValueError):
    """A file that cannot be written; the message is one line naming it."""


def is_remote(path):
    return "://" in str(path)


def reason(e):
    """The cause of an OSError / TensorFlow file error, one line, without TensorFlow's leading "<path>; "."""
    from yt8m_tf.cli import one_line

    text = one_line(getattr(e, "strerror", None) or getattr(e, "message", None) or str(e))
    if not text:
        return type(e).__name__
    head, sep, tail = text.partition("; ")
    return tail if sep and (head.startswith("/") or is_remote(head)) else text


def temporary_name(path, kind="tmp"):
    """A hidden name beside `path`, unique to this process and call."""
    directory, name = os.path.split(str(path).rstrip("/"))
    return os.path.join(directory, f".{name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove(path):
    """Removes a temporary file or directory; never raises (the error that led here is the one that matters)."""
    try:
        if not is_remote(path):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                os.remove(path)
        elif tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        elif tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
    except Exception:  # noqa: BLE001
        pass


class _CheckedFile:
    """The file being written: a failing `write` (disk full) raises the writer's one-line WriteError."""

    def __init__(self, file, error):
        self._file = file
        self._error = error

    def write(self, data):
        try:
            return self._file.write(data)
        except (OSError, tf.errors.OpError) as e:
            raise self._error(e) from None

    def __getattr__(self, name):  # flush, tell, ... for writers such as pandas or numpy
        return getattr(self._file, name)


class AtomicFile:
    """``with AtomicFile(path, mode, what) as f: f.write(...)``: `f` writes a temporary file beside `path` that
    replaces `path` when the block ends without an exception, and is removed otherwise.

    `mode` is "w" (text, utf-8, no newline translation) or "wb"; `what` names the file in errors (a flag such as
    "--output_metrics", or "output file"). Entering creates the temporary file, so a missing or unwritable
    directory fails before any long work: ``<what> '<path>': its directory '<dir>' does not exist`` (local paths),
    ``<what> '<path>' is a directory; give a file name``, ``cannot write <what> '<path>': <reason>`` (also for a
    write or the final rename that fails later, e.g. a full disk). All are `WriteError`.
    """

    def __init__(self, path, mode="w", what="file"):
        if mode not in ("w", "wb"):
            raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
        self.path = str(path)
        self.mode = mode
        self.what = what
        self.tmp_path = temporary_name(self.path)
        self._file = None

    def open(self):
        """Checks the destination and creates the temporary file; returns the file to write."""
        path = self.path
        if not path or path.endswith("/"):
            raise WriteError(f"{self.what} '{path}' is not a file name")
        directory = os.path.dirname(path) or "."
        if not is_remote(path) and not os.path.isdir(directory):  # object stores have no directories to check
            raise WriteError(f"{self.what} '{path}': its directory '{directory}' does not exist")
        if tf.io.gfile.isdir(path):
            raise WriteError(f"{self.what} '{path}' is a directory; give a file name")
        try:
            if is_remote(path):
                with tf.io.gfile.GFile(self.tmp_path, self.mode) as probe:  # remote: permissions show at upload
                    probe.write("" if self.mode == "w" else b"")
                self._file = tf.io.gfile.GFile(self.tmp_path, self.mode)
            elif self.mode == "w":
                self._file = open(self.tmp_path, "w", encoding="utf-8", newline="")
            else:
                self._file = open(self.tmp_path, "wb")
        except (OSError, tf.errors.OpError) as e:
            self.discard()
            raise self.error(e) from None
        return _CheckedFile(self._file, self.error)

    def error(self, e):
        return WriteError(f"cannot write {self.what} '{self.path}': {reason(e)}")

    def commit(self):
        """Closes the temporary file and renames it over `path`."""
        try:
            if is_remote(self.path):
                self._file.close()
                tf.io.gfile.rename(self.tmp_path, self.path, overwrite=True)
            else:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                os.replace(self.tmp_path, self.path)
        except (OSError, tf.errors.OpError) as e:  # e.g. the last buffer does not fit on the disk
            self.discard()
            raise self.error(e) from None
        except BaseException:
            self.discard()
            raise

    def discard(self):
        """Drops the temporary file (the target is untouched)."""
        try:
            if self._file is not None:
                self._file.close()
        except Exception:  # noqa: BLE001 - the error that led here is the one that matters
            pass
        _remove(self.tmp_path)

    def __enter__(self):
        return self.open()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


def check_writable(path, what):
    """Fails now, not after hours of work, when `path` cannot be written (see AtomicFile); writes nothing."""
    if path:
        writer = AtomicFile(path, "w", what)
        writer.open()
        writer.discard()


@contextlib.contextmanager
def replaced_directory(path):
    """``with replaced_directory(path) as tmp:`` fill the directory `tmp`; when the block succeeds it takes the
    place of `path` (an existing one is moved aside, then removed), else it is removed. The parent is created."""
    path = str(path).rstrip("/")
    parent = os.path.dirname(path)
    if parent:
        tf.io.gfile.makedirs(parent)
    tmp = temporary_name(path)
    try:
        yield tmp
        old = temporary_name(path, "old") if tf.io.gfile.exists(path) else None
        if old:
            tf.io.gfile.rename(path, old)
        tf.io.gfile.rename(tmp, path)
        if old:
            _remove(old)
    finally:
        _remove(tmp)
