"""Kaggle submission files, as google/youtube-8m's inference.py writes them, formatted without a Python call per
(class, score) pair (inference.py writes them atomically: yt8m_tf.atomic).

Video level (2017/2018 competitions; `format_lines` in the starter code's inference.py)::

    VideoId,LabelConfidencePairs
    <video id>,<label> <score> <label> <score> ...      one row per video, top_k pairs by descending score

each pair formatted as ``"%i %g" % (label, score)``. Rows are built by one ``%`` call over a whole batch with a
per-row template ``"%s," + " ".join(["%i %g"] * k) + "\\n"``; the output is byte-identical to the starter code's
per-pair formatting (``%g`` formats the float32 score widened to a double, exactly what ``"%g" % np.float32(x)``
does).

Segment level (2019 competition; inference.py with ``--segment_labels``)::

    Class,Segments
    <class id>,<video id>:<start frame> <video id>:<start frame> ...

one row per whitelisted class that was predicted for at least one segment, its segments (5-frame windows starting at
frame 0, 5, 10, ...) by descending score, at most ``segment_max_pred`` (100000) of them. A segment counts for a class
only when the class is among the segment's top_k whitelisted classes (the starter code keeps each segment's top_k
line and builds per-class heaps from it). `SegmentTopK` keeps the per-class best in bounded memory.
"""

import numpy as np
import tensorflow as tf

VIDEO_HEADER = "VideoId,LabelConfidencePairs\n"
SEGMENT_HEADER = "Class,Segments\n"
SEGMENT_MAX_PRED = 100000


def _as_text(value):
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    return str(value)


def format_video_rows(video_ids, top_indices, top_scores):
    """Submission rows (no header) for a batch, as one string of ``\\n``-terminated lines.

    Args:
      video_ids: [B] str or bytes (utf-8).
      top_indices: [B, k] int class ids.
      top_scores: [B, k] float scores; pairs are written by descending score (ties keep the given order).
    """
    top_indices = np.asarray(top_indices)
    top_scores = np.asarray(top_scores)
    if top_indices.ndim != 2 or top_indices.shape != top_scores.shape or len(video_ids) != top_indices.shape[0]:
        raise ValueError(f"format_video_rows needs [B] ids and [B, k] indices/scores, got {len(video_ids)}, "
                         f"{top_indices.shape} and {top_scores.shape}")
    batch, k = top_indices.shape
    if batch == 0:
        return ""
    order = np.argsort(-top_scores.astype(np.float64), axis=1, kind="stable")
    values = np.empty((batch, 2 * k + 1), dtype=object)
    values[:, 0] = [_as_text(v) for v in video_ids]
    values[:, 1::2] = np.take_along_axis(top_indices, order, axis=1).astype(np.int64).tolist()
    # float32 -> float64 is exact; "%g" % np.float32(x) formats float(x), i.e. this very double.
    values[:, 2::2] = np.take_along_axis(top_scores, order, axis=1).astype(np.float64).tolist()
    row = "%s," + " ".join(["%i %g"] * k) + "\n"
    return (row * batch) % tuple(values.ravel().tolist())


def format_video_rows_naive(video_ids, top_indices, top_scores):
    """The starter code's per-pair formatting (reference for tests and the speed comparison)."""
    lines = []
    for video_id, labels, scores in zip(video_ids, np.asarray(top_indices), np.asarray(top_scores)):
        pairs = sorted(zip(labels, scores), key=lambda p: -p[1])
        lines.append(_as_text(video_id) + "," + " ".join("%i %g" % (label, score) for label, score in pairs) + "\n")
    return "".join(lines)


def read_video_rows(path):
    """(video ids [N] str, classes [N, k] int32, scores [N, k] float32) of a video-level submission file; rows with
    fewer than k pairs are padded with class 0 at score 0. Raises ValueError naming the file and line on a row that
    is not `id,label score ...`."""
    ids, pairs = [], []
    with tf.io.gfile.GFile(path) as f:
        header = f.readline()
        if header != VIDEO_HEADER:
            raise ValueError(f"'{path}' does not start with the header {VIDEO_HEADER.strip()!r}")
        for number, line in enumerate(f, start=2):
            video_id, comma, values = line.rstrip("\n").partition(",")
            fields = values.split()
            if not comma or len(fields) % 2:
                raise ValueError(f"'{path}' line {number} is not 'VideoId,label score label score ...'")
            ids.append(video_id)
            pairs.append(fields)
    k = max((len(p) // 2 for p in pairs), default=0)
    classes, scores = np.zeros((len(ids), k), np.int32), np.zeros((len(ids), k), np.float32)
    for row, fields in enumerate(pairs):
        n = len(fields) // 2
        classes[row, :n] = np.asarray(fields[0::2], np.int64)
        scores[row, :n] = np.asarray(fields[1::2], np.float64)
    return ids, classes, scores


def format_segment_row(class_id, segment_ids):
    """``<class>,<video:start> <video:start> ...`` + newline (segment_ids already in descending score order)."""
    return "%d,%s\n" % (class_id, " ".join(segment_ids))


def read_segment_label_ids(path, num_classes):
    """The class whitelist of the 2019 competition (segment_label_ids.csv: header ``Index`` then one id per line;
    non-integer lines are skipped as in the starter code) -> sorted int array. Local or gs:// paths only."""
    if "://" in path and not path.startswith("gs://"):
        raise ValueError(f"--segment_label_ids_file '{path}' must be a local or gs:// path (download it first: "
                         "it is segment_label_ids.csv in google/youtube-8m)")
    if not tf.io.gfile.exists(path):
        raise ValueError(f"--segment_label_ids_file '{path}' does not exist")
    ids = []
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            try:
                ids.append(int(line))
            except ValueError:
                continue
    if not ids:
        raise ValueError(f"--segment_label_ids_file '{path}' holds no class ids")
    ids = np.unique(np.asarray(ids, np.int64))
    if ids[0] < 0 or ids[-1] >= num_classes:
        bad = ids[-1] if ids[-1] >= num_classes else ids[0]
        raise ValueError(f"--segment_label_ids_file '{path}' lists class {bad} outside [0, {num_classes}) "
                         "(--num_classes of the model)")
    return ids


class SegmentTopK:
    """Per class, the `max_per_class` best (score, key) pairs of a stream, in bounded memory.

    `add(classes, scores, keys)` buffers flat arrays; when the buffer outgrows twice what survived the last pruning
    (at least `min_buffer` entries) it is pruned to each class's best `max_per_class` (one lexsort), so memory stays
    O(min(entries, classes * max_per_class)). Ties are broken by smaller key (keys count up in input order).
    """

    def __init__(self, max_per_class=SEGMENT_MAX_PRED, min_buffer=1 << 22):
        if int(max_per_class) <= 0:
            raise ValueError(f"--segment_max_pred must be positive, got {max_per_class}")
        self.max_per_class = int(max_per_class)
        self.min_buffer = int(min_buffer)
        self._chunks = []
        self._buffered = 0
        self._kept = 0

    def add(self, classes, scores, keys):
        classes = np.asarray(classes, np.int32).ravel()
        scores = np.asarray(scores, np.float32).ravel()
        keys = np.asarray(keys, np.int64).ravel()
        if not (len(classes) == len(scores) == len(keys)):
            raise ValueError("classes, scores and keys must have the same length")
        if len(classes):
            self._chunks.append((classes, scores, keys))
            self._buffered += len(classes)
        if self._buffered > max(self.min_buffer, 2 * self._kept):
            self._prune()

    def _prune(self):
        if not self._chunks:
            return np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        classes, scores, keys = (np.concatenate(column) for column in zip(*self._chunks))
        order = np.lexsort((keys, -scores.astype(np.float64), classes))
        classes, scores, keys = classes[order], scores[order], keys[order]
        starts = np.flatnonzero(np.r_[True, classes[1:] != classes[:-1]])
        rank = np.arange(len(classes)) - np.repeat(starts, np.diff(np.r_[starts, len(classes)]))
        keep = rank < self.max_per_class
        classes, scores, keys = classes[keep], scores[keep], keys[keep]
        self._chunks = [(classes, scores, keys)]
        self._buffered = self._kept = len(classes)
        return classes, scores, keys

    def results(self):
        """Yields (class_id, keys [n], scores [n]) by ascending class id, keys by descending score."""
        classes, scores, keys = self._prune()
        starts = np.flatnonzero(np.r_[True, classes[1:] != classes[:-1]]) if len(classes) else np.zeros(0, int)
        ends = np.r_[starts[1:], len(classes)]
        for start, end in zip(starts, ends):
            yield int(classes[start]), keys[start:end], scores[start:end]
