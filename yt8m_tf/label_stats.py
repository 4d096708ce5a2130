"""Label statistics of a training set: class counts S(y) and the label co-occurrence / correlation matrix M_c.

Na et al. 2017 use two statistics of the training labels: S(y), the number of training videos of class y, sets the
adaptive-noise scale gamma = (1/n) sum_i 1/S(y_i) (section 2.2.5, Eq. 12; `yt8m_tf.pooling.adaptive_noise`), and
M_c, "calculated higher as the i-th and j-th label appear together more in the same video" (section 2.4, Eq. 19-20;
`yt8m_tf.label_processing`). One streaming pass over the training TFRecords computes both:

    python -m yt8m_tf.label_stats --data_pattern 'train*.tfrecord' --output_dir DIR   (console script yt8m-label-stats)

(`--skip_corrupt_records` skips and counts corrupt records, as in train.py),

writes, atomically (temporary name, then rename; local or gs://), with `np.save(allow_pickle=False)`:

* `class_counts.npy`        int64 [C]: S(y), videos with label y.
* `label_cooccurrence.npy`  int64 [C, C]: N[i, j], videos with both labels i and j (symmetric, diagonal = S).
* `label_correlation.npy`   float32 [C, C]: M_c = `label_processing.normalize_correlation(N, method)`.
* `label_stats.json`        num_videos, num_classes, data_pattern, labels per video, method, ...

Reading is label-only for every layout the readers read (video- or frame-level, 2017 `video_id` or 2018 `id`,
2019 segment-rated, test files without labels): `tf.train.Example.features` and `tf.train.SequenceExample.context`
are both field 1 of their message with the same `Features` type (SequenceExample's frames are field 2), so
`tf.io.parse_example` with only a `labels` spec reads the context labels of frame-level records too; it skips the
frame bytes without decoding them and never builds a multi-hot vector. A label id listed twice in one video counts
once (as the readers' multi-hot does).

Counting is sparse: per batch, each video's (i, j) label pairs (about 3 labels -> 9 pairs) are turned into flat
indices i * C + j, reduced with `np.unique(..., return_counts=True)` and added to the one C x C accumulator; nothing
C x C is allocated per batch or per video. The accumulator is int32 (60 MB for C = 3862, 89 MB for 4716) while the
number of videos read stays below 2**31 - 1 (a count never exceeds the number of videos; all YouTube-8M releases
have < 10M training videos) and is switched to int64 otherwise; `compute` returns int64 arrays. Saving adds the
float64 work arrays of `normalize_correlation` (numpy peak measured for C = 3862: 0.17 GB in `compute`,
0.46 GB in `save` with "row", 0.57 GB with "seilna").

Correlation convention (the one `yt8m_tf.label_processing` uses): row i of M_c is the TARGET class, the score update
is `(M_c O_h)[i] = sum_j M_c[i, j] O_h[j]`, i.e. `O_h @ M_c.T` for a batch. Default method `"row"`:

    M_c[i, j] = N[i, j] / sum_k N[i, k]        (diagonal N[i, i] = S(i) kept; an all-zero row stays zero)

Each row is divided by its own sum (the total number of labels, its own included, carried by the videos of class i),
so every row of a class that occurs is a probability vector (non-negative, sums to 1) and `(M_c O_h)[i]` is a
weighted average of the class probabilities, weighted by how often each class j appears together with i. Why this
default: this project applies Eq. 20 to probabilities, as the paper writes it, and "row" keeps M_c O_h in [0, 1],
so `LabelProcessing(normalize_weights=True)` is an exact convex mix, and with the paper's alpha = 1 the initial
scores (M'_c starts equal to M_c) stay in [0, 1 + beta + gamma], never negative. `--method seilna` is the original
code's matrix: m = N with its diagonal replaced by the row mean (m[i, i] = mean_k N[i, k]), then
`M_c[i, j] = (m[i, j] - mean_k m[i, k]) / sum_k m[i, k]` (for symmetric N): rows sum to 0 and below-average pairs
are negative. The original applied it to expert LOGITS before the sigmoid, where negative values are harmless; on
probabilities it pushes scores below 0, where the losses' clipping stops the gradient. Both are monotone in N[i, j]
within a row, as Eq. 19 asks. See `normalize_correlation` for the code of both.

Python API: `compute`, `save`, `load`, `load_class_counts` (class_counts.npy or an official vocabulary.csv),
`for_training` (used by the trainer) and `main` (the CLI).
"""

import argparse
import io
import json
import os
import sys
import time

from yt8m_tf import cli  # noqa: F401  first: quiets TensorFlow's start-up lines (python -m yt8m_tf.label_stats)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import readers  # noqa: E402
from readers import files as files_lib  # noqa: E402
from readers.base import CLASSES_2017  # noqa: E402
from readers.files import ReaderError  # noqa: E402
from yt8m_tf import atomic  # noqa: E402
from yt8m_tf.label_processing import normalize_correlation  # noqa: E402

__all__ = ["LabelStatsError", "DEFAULT_METHOD", "METHODS", "FILES", "compute", "save", "load", "load_class_counts",
           "read_vocabulary", "for_training", "main"]

DEFAULT_METHOD = "row"
METHODS = ("row", "seilna")
COUNTS_FILE = "class_counts.npy"
COOCCURRENCE_FILE = "label_cooccurrence.npy"
CORRELATION_FILE = "label_correlation.npy"
JSON_FILE = "label_stats.json"
FILES = {"class_counts": COUNTS_FILE, "cooccurrence": COOCCURRENCE_FILE, "correlation": CORRELATION_FILE}
_INT32_LIMIT = np.iinfo(np.int32).max


class LabelStatsError(ReaderError):
    """Missing or inconsistent label statistics; the message is one line naming the file or directory."""


# ---------------------------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------------------------

def _as_files(data_pattern):
    """A pattern string (comma-separated globs) or an explicit list of files -> sorted file list."""
    if isinstance(data_pattern, (list, tuple)):
        files = sorted(set(str(f) for f in data_pattern))
        if not files:
            raise ReaderError("no input files given")
        return files
    return files_lib.list_files(data_pattern)


def _check_first_record(path):
    """The readers' up-front check, for a labels-only read: the first record must be a YouTube-8M record."""
    record = files_lib.first_record(path)
    try:
        context = tf.train.SequenceExample.FromString(record).context.feature
    except Exception:  # noqa: BLE001 - protobuf's DecodeError has no stable import path
        raise ReaderError(f"'{path}' does not hold tf.train.Example / SequenceExample records") from None
    if "id" not in context and "video_id" not in context:
        raise ReaderError(f"'{path}' has no 'id' or 'video_id' key; keys present: {sorted(context)}")


def _labels_dataset(files, batch_size, skip_corrupt=None):
    """(filenames, label values, row_splits) per batch of records; only the `labels` key is parsed."""
    spec = {"labels": tf.io.RaggedFeature(tf.int64)}

    def parse(filenames, records):
        labels = tf.io.parse_example(records, spec)["labels"]
        return filenames, labels.values, labels.row_splits

    records = files_lib.record_dataset(files, skip_corrupt=skip_corrupt)
    batches = records.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def _bad_label_message(value, filename, num_classes):
    """The readers' message for an out-of-range label id (readers.base.BaseReader._multi_hot)."""
    filename = filename.decode("utf-8", "replace") if isinstance(filename, bytes) else filename
    if value < 0:
        return f"negative label id {value} in '{filename}'"
    return (f"label id {value} >= --num_classes {num_classes} in '{filename}'; "
            f"2017 (v1) data has {CLASSES_2017} classes: use --num_classes {CLASSES_2017}")


def _video_pairs(values, row_splits, num_classes):
    """One batch's label lists -> flat pair indices i * C + j of every video's (i, j) label pairs (i == j included),
    after removing repeated ids within a video; also the number of distinct labels per video."""
    lengths = np.diff(row_splits)
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    keys = np.unique(rows * num_classes + values)  # sorted by video, then label; repeats removed
    rows, labels = keys // num_classes, keys % num_classes
    per_video = np.bincount(rows, minlength=len(lengths))
    starts = np.cumsum(per_video) - per_video
    k = per_video[rows]  # for each label occurrence: its video's label count
    first = np.repeat(np.arange(len(labels)), k)
    offsets = np.arange(len(first)) - np.repeat(np.cumsum(k) - k, k)
    second = np.repeat(starts[rows], k) + offsets
    return labels[first] * num_classes + labels[second], per_video


def _scan_for_bad_file(files, error):
    """After a parse error: the one-line message naming the first file whose labels cannot be parsed."""
    detail = readers.describe_error(error, files)
    spec = {"labels": tf.io.RaggedFeature(tf.int64)}
    local = [f for f in files if "://" not in f]
    if len(local) == len(files) and sum(tf.io.gfile.stat(f).length for f in local) <= 4 << 30:
        for path in files:
            try:
                for batch in tf.data.TFRecordDataset(path).batch(1024):
                    tf.io.parse_example(batch, spec)
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
                return f"cannot read the labels of '{path}': {readers.describe_error(e, [path])}"
    return f"cannot read the labels of one of {len(files)} input files: {detail}"


def compute(data_pattern, num_classes, batch_size=1024, skip_corrupt=None):
    """One streaming pass over TFRecords -> dict(class_counts, cooccurrence, num_videos, ...).

    Args:
      data_pattern: comma-separated glob patterns (local or gs://), or a list of files (the trainer's).
      num_classes: C; a label id outside [0, C) raises `readers.ReaderError` naming the id and the file.
      batch_size: records parsed per batch.
      skip_corrupt: a `readers.CorruptRecordCounter` to skip and count corrupt records (--skip_corrupt_records);
        without it, local files must end with a whole record (`readers.files.check_truncation`).

    Returns:
      dict with `class_counts` int64 [C] (S(y)), `cooccurrence` int64 [C, C] (N[i, j], diagonal = S),
      `num_videos`, `videos_with_labels`, `total_labels` (distinct labels summed over videos), `max_labels`,
      `num_classes`, `data_pattern` (as given, a list joined by commas) and `seconds`.
    """
    num_classes = int(num_classes)
    if num_classes <= 0:
        raise ReaderError(f"--num_classes must be positive, got {num_classes}")
    if int(batch_size) <= 0:
        raise ReaderError(f"--batch_size must be positive, got {batch_size}")
    start = time.perf_counter()
    files = _as_files(data_pattern)
    if skip_corrupt is None:
        files_lib.check_truncation(files)
    _check_first_record(files[0])
    counts = np.zeros((num_classes, num_classes), np.int32)
    flat = counts.reshape(-1)
    num_videos = videos_with_labels = total_labels = max_labels = 0
    iterator = iter(_labels_dataset(files, int(batch_size), skip_corrupt))
    while True:
        try:
            filenames, values, row_splits = next(iterator)
        except StopIteration:
            break
        except tf.errors.DataLossError as e:
            raise ReaderError(readers.describe_error(e, files)) from None
        except tf.errors.InvalidArgumentError as e:
            raise ReaderError(_scan_for_bad_file(files, e)) from None
        values, row_splits = values.numpy(), row_splits.numpy()
        batch = len(row_splits) - 1
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            position = int(np.argmax(bad))
            row = int(np.searchsorted(row_splits, position, side="right") - 1)
            raise ReaderError(_bad_label_message(int(values[position]), filenames.numpy()[row], num_classes))
        if counts.dtype == np.int32 and num_videos + batch > _INT32_LIMIT:
            counts = counts.astype(np.int64)
            flat = counts.reshape(-1)
        num_videos += batch
        if not len(values):
            continue
        pairs, per_video = _video_pairs(values, row_splits, num_classes)
        index, increments = np.unique(pairs, return_counts=True)
        flat[index] += increments.astype(flat.dtype)
        videos_with_labels += int(np.count_nonzero(per_video))
        total_labels += int(per_video.sum())
        max_labels = max(max_labels, int(per_video.max()))
    cooccurrence = counts.astype(np.int64)
    del counts, flat
    return {
        "class_counts": np.diagonal(cooccurrence).copy(),
        "cooccurrence": cooccurrence,
        "num_videos": num_videos,
        "videos_with_labels": videos_with_labels,
        "total_labels": total_labels,
        "max_labels": max_labels,
        "num_classes": num_classes,
        "data_pattern": ",".join(data_pattern) if isinstance(data_pattern, (list, tuple)) else str(data_pattern),
        "seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------

def _remote(path):
    return "://" in str(path)


def _join(directory, name):
    return f"{str(directory).rstrip('/')}/{name}" if _remote(directory) else os.path.join(directory, name)


def _exists(path):
    return tf.io.gfile.exists(path) if _remote(path) else os.path.exists(path)


def _save_array(path, array):
    with atomic.AtomicFile(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def _load_array(path):
    if not _exists(path):
        raise LabelStatsError(f"label statistics file '{path}' not found (write it with python -m "
                              "yt8m_tf.label_stats --data_pattern TRAIN_FILES --output_dir DIR)")
    try:
        if _remote(path):
            with tf.io.gfile.GFile(path, "rb") as f:
                return np.load(io.BytesIO(f.read()), allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise LabelStatsError(f"'{path}' is not a readable .npy array ({str(e).splitlines()[0]})") from None


def save(directory, stats, method=DEFAULT_METHOD):
    """Writes class_counts.npy, label_cooccurrence.npy, label_correlation.npy and label_stats.json into `directory`
    (created if needed; local or gs://), each atomically. `stats` is `compute`'s dict; a `correlation` entry, when
    present, is written as is instead of being recomputed with `method`. Returns {name: path}."""
    if method not in METHODS:
        raise LabelStatsError(f"unknown --method '{method}'; valid: {', '.join(METHODS)}")
    counts = np.asarray(stats["class_counts"], np.int64)
    cooccurrence = np.asarray(stats["cooccurrence"], np.int64)
    num_classes = len(counts)
    if counts.ndim != 1 or cooccurrence.shape != (num_classes, num_classes):
        raise LabelStatsError(f"class_counts {counts.shape} and cooccurrence {cooccurrence.shape} do not match")
    correlation = stats.get("correlation")
    if correlation is None:
        correlation = normalize_correlation(cooccurrence, method)
    if _remote(directory):
        tf.io.gfile.makedirs(directory)
    else:
        os.makedirs(directory, exist_ok=True)
    paths = {key: _join(directory, name) for key, name in FILES.items()}
    _save_array(paths["class_counts"], counts)
    _save_array(paths["cooccurrence"], cooccurrence)
    _save_array(paths["correlation"], np.asarray(correlation, np.float32))
    num_videos = int(stats.get("num_videos", 0))
    total_labels = int(stats.get("total_labels", 0))
    summary = {
        "num_videos": num_videos,
        "videos_with_labels": int(stats.get("videos_with_labels", 0)),
        "num_classes": num_classes,
        "classes_with_videos": int(np.count_nonzero(counts)),
        "total_labels": total_labels,
        "labels_per_video": total_labels / num_videos if num_videos else 0.0,
        "max_labels_per_video": int(stats.get("max_labels", 0)),
        "data_pattern": stats.get("data_pattern", ""),
        "method": method,
        "files": {key: name for key, name in FILES.items()},
        "correlation_convention": "row = target class: (M_c O_h)[i] = sum_j M_c[i, j] O_h[j]",
    }
    paths["json"] = _join(directory, JSON_FILE)
    with atomic.AtomicFile(paths["json"], "w") as f:
        f.write(json.dumps(summary, indent=2) + "\n")
    return paths


def load(directory, keys=("class_counts", "correlation")):
    """Loads `keys` (of class_counts, correlation, cooccurrence) from a directory `save` wrote
    (np.load(allow_pickle=False)); a missing file raises `LabelStatsError` naming it."""
    out = {}
    for key in keys:
        if key not in FILES:
            raise LabelStatsError(f"unknown label statistic '{key}'; valid: {', '.join(FILES)}")
        out[key] = _load_array(_join(directory, FILES[key]))
    num_classes = len(out["class_counts"]) if "class_counts" in out else None
    for key, array in out.items():
        expected = 1 if key == "class_counts" else 2
        if array.ndim != expected or (expected == 2 and array.shape[0] != array.shape[1]):
            raise LabelStatsError(f"'{_join(directory, FILES[key])}' has shape {array.shape}, expected "
                                  f"{'[C]' if expected == 1 else '[C, C]'}")
        if num_classes is None:
            num_classes = array.shape[0]
        if array.shape[0] != num_classes:
            raise LabelStatsError(f"the label statistics in '{directory}' disagree on the number of classes "
                                  f"({num_classes} vs {array.shape[0]} in {FILES[key]})")
    return out


def read_vocabulary(path, columns):
    """The `columns` of an official vocabulary.csv (local or gs://, read through tf.io.gfile) as a DataFrame; a
    one-line LabelStatsError when the file is missing or lacks them."""
    import pandas as pd

    if not _exists(path):
        raise LabelStatsError(f"vocabulary file '{path}' not found")
    with tf.io.gfile.GFile(path, "r") as f:
        try:
            return pd.read_csv(f, usecols=list(columns))
        except ValueError as e:
            raise LabelStatsError(f"'{path}' is not a YouTube-8M vocabulary.csv with {', '.join(columns)} columns "
                                  f"({str(e).splitlines()[0]})") from None


def load_class_counts(path, num_classes):
    """S(y) as int64 [num_classes] from a class_counts.npy, a directory holding one, or an official vocabulary.csv
    (column TrainVideoCount, placed by column Index; the rows are not in Index order)."""
    path = str(path)
    if tf.io.gfile.isdir(path):
        path = _join(path, COUNTS_FILE)
    if path.lower().endswith(".csv"):
        table = read_vocabulary(path, ["Index", "TrainVideoCount"])
        index = table["Index"].to_numpy()
        if len(table) != num_classes or np.unique(index).size != len(index) or index.min() != 0 \
                or index.max() != num_classes - 1:
            raise LabelStatsError(f"'{path}' has {len(table)} rows with Index {index.min()}..{index.max()}, expected "
                                  f"Index 0..{num_classes - 1} once each (--num_classes {num_classes})")
        counts = np.zeros(num_classes, np.int64)
        counts[index] = table["TrainVideoCount"].to_numpy(np.int64)
        return counts
    counts = _load_array(path)
    if counts.ndim != 1 or len(counts) != num_classes:
        raise LabelStatsError(f"'{path}' holds {counts.shape} class counts, expected [{num_classes}] "
                              f"(--num_classes {num_classes})")
    return counts.astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------
# Training and the command line
# ---------------------------------------------------------------------------------------------------------------

def _option(options, name, default=""):
    if isinstance(options, dict):
        return options.get(name, default)
    return getattr(options, name, default)


def for_training(settings, options, files=None):
    """The statistics a new model needs, as keyword arguments of `registry.build_model`.

    `class_counts` when settings["model"] == "AdaptiveNoiseModel", `correlation` when label_beta or label_gamma is
    non-zero (nothing otherwise). Source, in order: `options.label_stats_dir`; the files already in
    `options.train_dir`; else one pass over `files` (or `options.train_data_pattern`), saved into `train_dir` so they
    stay with the model (one line is printed). The correlation method of a fresh computation is
    settings.get("label_correlation_method", DEFAULT_METHOD).
    """
    keys = []
    if settings.get("model") == "AdaptiveNoiseModel":
        keys.append("class_counts")
    if settings.get("label_beta") or settings.get("label_gamma"):
        keys.append("correlation")
    if not keys:
        return {}
    num_classes = int(settings["num_classes"])
    stats_dir = _option(options, "label_stats_dir")
    train_dir = _option(options, "train_dir")
    if stats_dir:
        source, stats = stats_dir, load(stats_dir, keys)
    elif train_dir and all(_exists(_join(train_dir, FILES[k])) for k in keys):
        source, stats = train_dir, load(train_dir, keys)
    else:
        pattern = files if files else _option(options, "train_data_pattern")
        skip = readers.CorruptRecordCounter() if _option(options, "skip_corrupt_records", False) else None
        computed = compute(pattern, num_classes, skip_corrupt=skip)
        method = settings.get("label_correlation_method", DEFAULT_METHOD)
        computed["correlation"] = normalize_correlation(computed["cooccurrence"], method)
        computed["data_pattern"] = _option(options, "train_data_pattern") or computed["data_pattern"]
        where = "not saved (no --train_dir)"
        if train_dir:
            save(train_dir, computed, method=method)
            where = f"saved to {train_dir}"
        print(f"label statistics: computed from {computed['num_videos']} training videos in "
              f"{computed['seconds']:.1f} s, {where} (reuse with --label_stats_dir)", flush=True)
        return {k: computed[k] for k in keys}
    for key, array in stats.items():
        if array.shape[0] != num_classes:
            raise LabelStatsError(f"the label statistics in '{source}' are for {array.shape[0]} classes but "
                                  f"--num_classes is {num_classes}")
    return stats


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def main(argv=None):
    """CLI: one pass over --data_pattern, the files written into --output_dir, one summary line; exit 2 on bad
    input with a one-line error."""
    parser = argparse.ArgumentParser(
        prog="yt8m-label-stats",
        description="Class counts S(y) and the label co-occurrence / correlation matrix M_c of YouTube-8M training "
                    "TFRecords (video- or frame-level, 2017 or 2018); see yt8m_tf/label_stats.py.")
    parser.add_argument("--data_pattern", required=True, help="training TFRecords (comma-separated globs, gs:// ok)")
    parser.add_argument("--output_dir", required=True, help="where the .npy / .json files are written")
    parser.add_argument("--num_classes", type=_positive, default=3862, help="3862 (2018) or 4716 (2017 data)")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                        help="normalisation of M_c (see the module docstring)")
    parser.add_argument("--batch_size", type=_positive, default=1024, help="records parsed per batch")
    parser.add_argument("--skip_corrupt_records", action="store_true",
                        help="skip corrupt or truncated TFRecord records (counted and reported) instead of stopping")
    args = parser.parse_args(argv)
    counter = readers.CorruptRecordCounter() if args.skip_corrupt_records else None
    try:
        stats = compute(args.data_pattern, args.num_classes, batch_size=args.batch_size, skip_corrupt=counter)
        save(args.output_dir, stats, method=args.method)
    except (ReaderError, ValueError, OSError, tf.errors.OpError) as e:
        message = getattr(e, "message", None) or str(e)
        print(f"{parser.prog}: error: {message.strip().splitlines()[0] if message.strip() else type(e).__name__}",
              file=sys.stderr)
        return 2
    videos, seconds = stats["num_videos"], stats["seconds"]
    print(f"{videos} videos, {int(np.count_nonzero(stats['class_counts']))}/{args.num_classes} classes with >= 1 "
          f"video, {stats['total_labels'] / max(videos, 1):.3f} labels/video, {seconds:.1f} s "
          f"({videos / max(seconds, 1e-9):.0f} videos/s) -> {args.output_dir}")
    if counter is not None:
        print(counter.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
