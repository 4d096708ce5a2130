"""YouTube-8M evaluation metrics: Hit@1, PERR, GAP, mAP (video level) and MAP@K (2019 segment level).

Semantics follow google/youtube-8m (eval_util.py, average_precision_calculator.py,
mean_average_precision_calculator.py, eval.py, segment_eval_inference.py); the code is vectorised and
streaming: per video only the top-k (score, class, is_positive) triplets and per-class positive counts
are kept, and GAP / mAP need one stable sort at `get()`.

Official facts reproduced (file:line in google/youtube-8m @ e6f6bf6):
* Hit@1 = mean over videos of the label at argmax (eval_util.py:38-40); ties -> lowest class index.
* PERR (eval_util.py:55-68): per video n = number of positives, precision of the n best-scored classes,
  where a class only counts if its score is > 0 (line 63); a video with n = 0 contributes 0 and still
  counts in the mean (argpartition(-0) selects every class, none of which is positive).
* GAP (eval_util.py:86-91, 132-141; average_precision_calculator.py:209-242): per video the top
  min(k, C) triplets; all triplets of all videos ranked by score; AP = sum over ranked positives of
  precision@i / P with P = total positives of all videos over *all* classes (eval_util.py:127, 199),
  so positives outside the top-k count as misses. P == 0 -> 0.
* mAP (eval_util.py:193-196, mean_average_precision_calculator.py:100-113, utils.py:120): per class the
  triplets of that class (videos having it in their top-k), AP with denominator = the class's positives
  over all videos; classes with 0 positives are left out; the mean is numpy.mean of the rest.
  eval.py:339-340 passes top_n=None (no AP@n); `top_n` here reproduces the optional AP@n
  (average_precision_calculator.py:229-237: first n ranked entries, denominator min(P_c, n)).
* Labels are binarised with `> 0`. The official sums label values (eval_util.py:58, 127); identical for
  0/1 multi-hot labels.

Ties. The official ranking shuffles the heap with random.seed(0) and then sorts by score
(average_precision_calculator.py:214-219), so the order of equal scores is arbitrary and depends on
batching. Here ties are broken deterministically: inside a video by lower class index (tf.math.top_k),
across videos by accumulation order (stable sort on -score). With distinct scores every value equals
the official one; streaming in any batch split gives identical results.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = [
    "calculate_hit_at_one",
    "calculate_precision_at_equal_recall_rate",
    "calculate_gap",
    "calculate_map",
    "top_k_triplets",
    "top_k_step_outputs",
    "EvaluationMetrics",
    "SegmentEvaluationMetrics",
    "calculate_segment_map",
    "calculate_segment_map_from_submission",
]

SEGMENT_MAP_K = 100000


# --------------------------------------------------------------------------------------------------
# TF part: works eagerly, inside tf.function and under XLA (default xla_compatible=True).
# --------------------------------------------------------------------------------------------------


def _perr_from_ranked(ranked_scores, ranked_labels, num_positives):
    """PERR per row from rows ranked by descending score; needs width >= the row's positive count."""
    width = tf.shape(ranked_scores)[1]
    depth = tf.cast(num_positives, tf.int32)
    in_top_n = tf.range(width)[tf.newaxis, :] < depth[:, tf.newaxis]
    counted = ranked_labels * tf.cast(ranked_scores > 0, ranked_labels.dtype) * tf.cast(in_top_n, ranked_labels.dtype)
    hits = tf.cast(tf.reduce_sum(counted, axis=1), tf.float64)  # integer-valued, exact
    n = tf.cast(num_positives, tf.float64)
    return tf.where(n > 0, hits / tf.maximum(n, 1.0), tf.zeros_like(hits))


_CHUNK = 64  # classes per chunk of the threshold top-k


def _threshold_top_k(predictions, k):
    """`tf.math.top_k(predictions, k, sorted=True)` (same values, same indices, ties -> lower class index) in about
    2/3 of its CPU time for k << C; dynamic shapes (not for XLA).

    The maxima of chunks of 64 classes are k different entries of a row, so the k-th largest of them, t, is <= the
    row's k-th largest value: every entry of the top-k is >= t. Only the entries >= t (typically a few times k) are
    ranked, kept in class order so that equal scores still rank by lower class index. A row with fewer than k
    such entries (NaN scores) falls back to `tf.math.top_k`.
    """
    batch = tf.shape(predictions)[0]
    maxima = tf.nn.max_pool1d(predictions[:, :, tf.newaxis], _CHUNK, _CHUNK, "SAME")[:, :, 0]
    threshold = tf.reduce_min(tf.math.top_k(maxima, k=k, sorted=False).values, axis=1)
    coords = tf.where(predictions >= threshold[:, tf.newaxis])  # row-major: class order within a row
    rows = tf.cast(coords[:, 0], tf.int32)
    counts = tf.math.bincount(rows, minlength=batch, maxlength=batch)

    def ranked():
        position = tf.range(tf.shape(rows)[0]) - tf.gather(tf.cumsum(counts, exclusive=True), rows)
        at = tf.stack([rows, position], axis=1)
        shape = tf.stack([batch, tf.reduce_max(counts)])
        scores = tf.tensor_scatter_nd_update(tf.fill(shape, tf.constant(-np.inf, predictions.dtype)), at,
                                             tf.gather_nd(predictions, coords))
        classes = tf.tensor_scatter_nd_update(tf.zeros(shape, tf.int32), at, tf.cast(coords[:, 1], tf.int32))
        values, picked = tf.math.top_k(scores, k=k, sorted=True)
        return values, tf.gather(classes, picked, batch_dims=1)

    enough = tf.logical_and(tf.reduce_min(tf.concat([counts, [k]], 0)) >= k, batch > 0)
    return tf.cond(enough, ranked, lambda: tuple(tf.math.top_k(predictions, k=k, sorted=True)))


def top_k_step_outputs(predictions, labels, k=20, xla_compatible=True):
    """Per-batch quantities `EvaluationMetrics.accumulate_top_k` needs, in pure TF ops.

    Args:
      predictions: [B, C] float scores.
      labels: [B, C] multi-hot (any dtype; > 0 is positive).
      k: per-video top-k (clipped to C).
      xla_compatible: True keeps every shape static (XLA-safe); a batch holding a video with more than k
        positives then ranks the full rows for PERR. False ranks only up to the batch's largest positive
        count and, when k is small against C, selects the top-k by a threshold (`_threshold_top_k`; same
        result as tf.math.top_k, about 1.5x faster on CPU) (dynamic shapes: eager / plain tf.function only).

    Returns dict of tensors: top_scores [B, k'] (descending, ties -> lower class index), top_indices
    [B, k'] int32, top_labels [B, k'] float32 0/1, num_positives [B] float32, class_positives [C]
    float32 (summed over the batch), hit_at_one [B] float32, perr [B] float64; k' = min(k, C).
    """
    if k <= 0:
        raise ValueError("k must be a positive integer")
    predictions = tf.convert_to_tensor(predictions)
    if not predictions.dtype.is_floating or predictions.dtype in (tf.float16, tf.bfloat16):
        predictions = tf.cast(predictions, tf.float32)
    labels = tf.convert_to_tensor(labels)
    if xla_compatible or labels.dtype == tf.bool:
        labels = tf.cast(tf.cast(labels, tf.float32) > 0, tf.float32)

    def binarised(values):  # only the gathered entries are binarised on the dynamic path
        return values if xla_compatible else tf.cast(values > 0, tf.float32)

    num_classes = predictions.shape[-1]
    if num_classes is None:
        raise ValueError("the class dimension of predictions must be static")
    k_eff = min(int(k), int(num_classes))

    if xla_compatible or -(-num_classes // _CHUNK) < 2 * k_eff:
        top_scores, top_indices = tf.math.top_k(predictions, k=k_eff, sorted=True)
    else:
        top_scores, top_indices = _threshold_top_k(predictions, k_eff)
    if xla_compatible:
        top_labels = tf.gather(labels, top_indices, batch_dims=1)
        num_positives = tf.reduce_sum(labels, axis=1)
        class_positives = tf.reduce_sum(labels, axis=0)
    else:  # counted from the (few) positive coordinates: two passes over [B, C] fewer
        where = tf.where(labels > 0)
        batch = tf.shape(labels)[0]
        num_positives = tf.cast(tf.math.bincount(tf.cast(where[:, 0], tf.int32), minlength=batch, maxlength=batch),
                                tf.float32)
        class_positives = tf.cast(tf.math.bincount(tf.cast(where[:, 1], tf.int32), minlength=num_classes,
                                                   maxlength=num_classes), tf.float32)
        top_labels = binarised(tf.gather(labels, top_indices, batch_dims=1))
    hit_at_one = top_labels[:, 0]

    if k_eff == num_classes:
        perr = _perr_from_ranked(top_scores, top_labels, num_positives)
    else:
        max_positives = tf.cast(tf.reduce_max(tf.concat([num_positives, [0.0]], 0)), tf.int32)

        def deeper():
            depth = num_classes if xla_compatible else tf.minimum(max_positives, num_classes)
            scores, indices = tf.math.top_k(predictions, k=depth, sorted=True)
            return _perr_from_ranked(scores, binarised(tf.gather(labels, indices, batch_dims=1)), num_positives)

        perr = tf.cond(max_positives > k_eff, deeper, lambda: _perr_from_ranked(top_scores, top_labels, num_positives))

    return {
        "top_scores": top_scores,
        "top_indices": top_indices,
        "top_labels": top_labels,
        "num_positives": num_positives,
        "class_positives": class_positives,
        "hit_at_one": hit_at_one,
        "perr": perr,
    }


_STEP_FUNCTIONS = {}


def _compiled_step_outputs(predictions, labels, k):
    """`top_k_step_outputs(predictions, labels, k, xla_compatible=False)` through a tf.function traced once per
    (k, class count, dtypes), any batch size: `EvaluationMetrics.accumulate` runs it for every batch, and one graph
    call costs less than the same ops run eagerly one by one."""
    predictions = tf.convert_to_tensor(predictions)
    labels = tf.convert_to_tensor(labels)
    if predictions.shape.rank != 2 or predictions.shape[-1] is None:
        return top_k_step_outputs(predictions, labels, k, xla_compatible=False)  # let it raise its own error
    key = (int(k), int(predictions.shape[-1]), predictions.dtype, labels.dtype)
    if key not in _STEP_FUNCTIONS:
        _STEP_FUNCTIONS[key] = tf.function(
            lambda p, l: top_k_step_outputs(p, l, key[0], xla_compatible=False),
            input_signature=[tf.TensorSpec([None, key[1]], key[2]), tf.TensorSpec([None, None], key[3])])
    return _STEP_FUNCTIONS[key](predictions, labels)


# --------------------------------------------------------------------------------------------------
# numpy ranking kernels
# --------------------------------------------------------------------------------------------------


def _score_order(scores):
    """Indices ranking `scores` descending; equal scores keep input order."""
    return np.argsort(-np.asarray(scores), kind="stable")


_KEY_CHUNK = 1 << 20  # entries per chunk when packing / unpacking the sort keys of `_rank_by_score`


def _rank_by_score(scores, *columns):
    """`[column[_score_order(scores)] for column in columns]` (flattened) with less time and memory for float32.

    Each float32 score is mapped to a uint32 that orders like the score descending (NaN last, -0.0 == 0.0, as
    `_score_order`), packed with the entry's index into one uint64 and the keys sorted in place: the same
    ranking as a stable sort (all keys are distinct), about twice as fast as numpy's stable argsort, and
    8 bytes per entry instead of the argsort's int64 result plus a negated copy of the scores.
    """
    scores = np.ascontiguousarray(scores).reshape(-1)
    columns = [np.asarray(column).reshape(-1) for column in columns]
    n = scores.size
    if scores.dtype != np.float32 or n >= 1 << 32:
        order = _score_order(scores)
        return [column[order] for column in columns]
    keys = np.empty(n, dtype=np.uint64)
    for a in range(0, n, _KEY_CHUNK):
        chunk = scores[a : a + _KEY_CHUNK]
        bits = chunk.view(np.uint32)
        descending = np.where(bits >> 31 == 0, bits ^ np.uint32(0x7FFFFFFF), bits)
        descending[bits == 0x80000000] = 0x7FFFFFFF  # -0.0 ranks as 0.0
        descending[np.isnan(chunk)] = 0xFFFFFFFF
        keys[a : a + chunk.size] = descending.astype(np.uint64) << np.uint64(32)
        keys[a : a + chunk.size] |= np.arange(a, a + chunk.size, dtype=np.uint64)
    keys.sort()
    ranked = [np.empty(n, dtype=column.dtype) for column in columns]
    for a in range(0, n, _KEY_CHUNK):
        index = (keys[a : a + _KEY_CHUNK] & np.uint64(0xFFFFFFFF)).astype(np.intp)
        for out, column in zip(ranked, columns):
            out[a : a + index.size] = column[index]
    return ranked


def _ap_of_ranked(positive_ranked, num_positives):
    """Non-interpolated AP of one ranked 0/1 list with an external positive count (0 if that is 0)."""
    if num_positives <= 0:
        return 0.0
    at = np.flatnonzero(positive_ranked)  # 0-based list positions of the positives
    return float(np.sum(np.arange(1, at.size + 1) / (at + 1.0)) / num_positives)


_CLASS_GROUP = 1 << 21  # entries per group of classes in `_class_aps` (bounds its temporary memory)


def _class_aps(ranked_classes, ranked_positives, num_classes, denominators, cutoff=None, ranked_keep=None):
    """Per-class AP of flat (class, positive[, keep]) entries ranked by score (see `_rank_by_score`).

    Each class's entries are ranked in that order; only its first `cutoff` entries are looked at, and among
    those only entries with keep=True form the list (the others are dropped without taking a rank). AP_c = sum
    over positives at list position j of (positives up to j) / j, divided by denominators[c]; AP_c = 0 where
    denominators[c] <= 0. Classes are handled in groups of about `_CLASS_GROUP` entries (each class's sums are
    the same as in one pass).
    """
    denominators = np.asarray(denominators, dtype=np.float64)
    aps = np.zeros(num_classes, dtype=np.float64)
    if ranked_classes.size == 0:
        return aps
    positives = np.asarray(ranked_positives, dtype=bool)
    keep = None if ranked_keep is None else np.asarray(ranked_keep, dtype=bool)
    counts = np.bincount(ranked_classes, minlength=num_classes)
    group = (np.cumsum(counts) - counts) // _CLASS_GROUP  # per class, non-decreasing
    entry_group = group.astype(np.min_scalar_type(group[-1]))[ranked_classes] if group[-1] > 0 else None
    sums = np.zeros(num_classes, dtype=np.float64)
    for g in np.unique(group[counts > 0]):
        entries = np.arange(ranked_classes.size) if entry_group is None else np.flatnonzero(entry_group == g)
        order = entries[np.argsort(ranked_classes[entries], kind="stable")]  # by class, then by score
        cls = ranked_classes[order]
        class_counts = np.bincount(cls, minlength=num_classes)
        starts = np.cumsum(class_counts) - class_counts  # first sorted index of each class
        pos = positives[order]
        if keep is not None:
            kept = keep[order]
            pos &= kept
        at = np.flatnonzero(pos)
        if cutoff is not None:
            at = at[(at - starts[cls[at]]) < cutoff]
        at_cls = cls[at]
        pos_counts = np.bincount(at_cls, minlength=num_classes)
        hits = np.arange(1, at.size + 1) - (np.cumsum(pos_counts) - pos_counts)[at_cls]
        if keep is None:  # every entry of a class before the cut-off holds a list position
            position = at - starts[at_cls] + 1
        else:  # kept entries before the cut-off are a prefix-closed subset: count them
            kept_before = np.concatenate([[0], np.cumsum(kept, dtype=np.int64)])
            position = kept_before[at + 1] - kept_before[starts[at_cls]]
        sums += np.bincount(at_cls, weights=hits / position, minlength=num_classes)
    np.divide(sums, denominators, out=aps, where=denominators > 0)
    return aps


# --------------------------------------------------------------------------------------------------
# Streaming storage
# --------------------------------------------------------------------------------------------------


class _GrowingColumns:
    """Named numpy columns sharing a leading dimension, with amortised O(1) appends (capacity doubling)."""

    def __init__(self):
        self.clear()

    def clear(self):
        self._data = None
        self.size = 0

    def append(self, **columns):
        n = next(iter(columns.values())).shape[0]
        if self._data is None:
            capacity = max(n, 1024)
            self._data = {
                name: np.empty((capacity,) + col.shape[1:], dtype=col.dtype) for name, col in columns.items()
            }
        capacity = next(iter(self._data.values())).shape[0]
        if self.size + n > capacity:
            capacity = max(2 * capacity, self.size + n)
            for name, old in self._data.items():
                new = np.empty((capacity,) + old.shape[1:], dtype=old.dtype)
                new[: self.size] = old[: self.size]
                self._data[name] = new
        for name, col in columns.items():
            self._data[name][self.size : self.size + n] = col
        self.size += n

    def get(self, name, empty_shape=(0,), empty_dtype=np.float64):
        if self._data is None:
            return np.zeros(empty_shape, dtype=empty_dtype)
        return self._data[name][: self.size]


def _to_numpy(x):
    if x is None:
        return None
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


def _score_dtype(scores):
    return np.float64 if scores.dtype == np.float64 else np.float32


def _class_dtype(num_classes):
    return np.int16 if num_classes <= np.iinfo(np.int16).max else np.int32


# --------------------------------------------------------------------------------------------------
# Streaming video-level metrics
# --------------------------------------------------------------------------------------------------


class EvaluationMetrics:
    """Streaming Hit@1, PERR, GAP, mAP and loss over batches of videos.

    Memory: per video min(top_k, C) triplets (score, class, positive) plus per-class positive counts.
    `accumulate(predictions, labels, loss)` = `top_k_step_outputs` + `accumulate_top_k`; a model step can
    compute `top_k_step_outputs` on the accelerator and hand its outputs to `accumulate_top_k` directly.

    Loss: `loss` may be a scalar (the batch's mean loss) or per-example values [B]; either way the epoch
    loss is the mean over all examples (a scalar is weighted by the batch size, as eval_util.py:190, 204).
    Batches given without a loss are left out of the loss average; with no loss at all `loss` is nan.

    mAP matches the official MeanAveragePrecisionCalculator fed by eval_util.EvaluationMetrics for the
    same top_k/top_n (eval.py uses top_n=None). The only differences are tie order (see module docstring)
    and binarised labels; `map` is nan when no class has a positive (numpy.mean of an empty list).
    """

    def __init__(self, num_classes, top_k=20, top_n=None):
        if int(num_classes) <= 0:
            raise ValueError("num_classes must be positive")
        if int(top_k) <= 0:
            raise ValueError("top_k must be a positive integer")
        if top_n is not None and int(top_n) <= 0:
            raise ValueError("top_n must be None or a positive integer")
        self.num_classes = int(num_classes)
        self.top_k = int(top_k)
        self.top_n = None if top_n is None else int(top_n)
        self._k = min(self.top_k, self.num_classes)
        self._store = _GrowingColumns()
        self.clear()

    def clear(self):
        """Forget everything accumulated."""
        self._store.clear()
        self._class_positives = np.zeros(self.num_classes, dtype=np.int64)
        self.num_examples = 0
        self._sum_hit_at_one = 0.0
        self._sum_perr = 0.0
        self._sum_loss = 0.0
        self._num_loss_examples = 0

    def accumulate(self, predictions, labels, loss=None):
        """Adds a [B, C] batch; returns this batch's mean `hit_at_one`, `perr`, `loss` (nan if no loss)."""
        outputs = _compiled_step_outputs(predictions, labels, self.top_k)
        return self.accumulate_top_k(**outputs, loss=loss)

    def accumulate_top_k(
        self,
        top_scores,
        top_indices,
        top_labels,
        class_positives,
        hit_at_one=None,
        perr=None,
        num_positives=None,
        loss=None,
    ):
        """Adds a batch given by `top_k_step_outputs` (tensors or arrays).

        top_scores/top_indices/top_labels: [B, k'] ranked descending, k' >= min(top_k, C) (extra columns are
        dropped). class_positives: [C], or [R, C] partial sums (per video or per replica) that are summed.
        hit_at_one, perr: per video [B]; if None they are derived from the top-k (perr then needs
        num_positives [B], all <= min(top_k, C)).
        """
        scores = _to_numpy(top_scores)
        indices = _to_numpy(top_indices)
        labels = _to_numpy(top_labels)
        if scores.ndim != 2 or scores.shape != indices.shape or scores.shape != labels.shape:
            raise ValueError("top_scores, top_indices and top_labels must share one [B, k] shape")
        if scores.shape[1] < self._k:
            raise ValueError(f"need at least {self._k} ranked entries per video, got {scores.shape[1]}")
        scores, indices, labels = scores[:, : self._k], indices[:, : self._k], labels[:, : self._k] > 0
        batch = scores.shape[0]

        class_pos = _to_numpy(class_positives)
        if class_pos.shape[-1] != self.num_classes:
            raise ValueError(f"class_positives must end in {self.num_classes} classes, got {class_pos.shape}")
        class_pos = class_pos.reshape(-1, self.num_classes).sum(axis=0, dtype=np.float64)

        if hit_at_one is None:
            hit_at_one = labels[:, 0].astype(np.float64)
        if perr is None:
            if num_positives is None:
                raise ValueError("perr=None needs num_positives")
            n = _to_numpy(num_positives).astype(np.float64).reshape(batch)
            if np.any(n > self._k):
                raise ValueError("perr cannot be derived from the top-k when a video has more than k positives")
            counted = labels & (scores > 0) & (np.arange(self._k)[None, :] < n[:, None])
            perr = np.divide(counted.sum(axis=1), n, out=np.zeros(batch), where=n > 0)
        hit_at_one = _to_numpy(hit_at_one).astype(np.float64).reshape(batch)
        perr = _to_numpy(perr).astype(np.float64).reshape(batch)

        self._store.append(
            scores=scores.astype(_score_dtype(scores)),
            classes=indices.astype(_class_dtype(self.num_classes)),
            labels=labels,
        )
        self._class_positives += np.rint(class_pos).astype(np.int64)
        self.num_examples += batch
        self._sum_hit_at_one += float(hit_at_one.sum())
        self._sum_perr += float(perr.sum())

        batch_loss = float("nan")
        if loss is not None:
            loss = _to_numpy(loss).astype(np.float64)
            batch_loss = float(np.mean(loss)) if loss.size else float("nan")
            if batch:
                self._sum_loss += batch_loss * batch
                self._num_loss_examples += batch
        mean = (lambda v: float(v.mean())) if batch else (lambda v: float("nan"))
        return {"hit_at_one": mean(hit_at_one), "perr": mean(perr), "loss": batch_loss}

    def _flat(self):
        k = self._k
        scores = self._store.get("scores", (0, k)).reshape(-1)
        classes = self._store.get("classes", (0, k), np.int32).reshape(-1)
        labels = self._store.get("labels", (0, k), bool).reshape(-1)
        return scores, classes, labels

    def _gap_and_class_aps(self):
        classes, labels = _rank_by_score(*self._flat())
        gap = _ap_of_ranked(labels, int(self._class_positives.sum()))
        denominators = self._class_positives.astype(np.float64)
        if self.top_n is not None:
            denominators = np.minimum(denominators, self.top_n)
        aps = _class_aps(classes, labels, self.num_classes, denominators, cutoff=self.top_n)
        return gap, aps

    @property
    def class_positives(self):
        """Positives per class [C] accumulated so far."""
        return self._class_positives.copy()

    def class_average_precisions(self):
        """Per-class AP [C] as used by `map`; nan for classes with no positives."""
        _, aps = self._gap_and_class_aps()
        return np.where(self._class_positives > 0, aps, np.nan)

    def get(self):
        """Epoch metrics: dict with python `gap`, `map`, `hit_at_one`, `perr`, `loss`, `num_examples`."""
        if self.num_examples <= 0:
            raise ValueError("no examples were accumulated")
        gap, aps = self._gap_and_class_aps()
        has_positives = self._class_positives > 0
        return {
            "gap": float(gap),
            "map": float(aps[has_positives].mean()) if has_positives.any() else float("nan"),
            "hit_at_one": self._sum_hit_at_one / self.num_examples,
            "perr": self._sum_perr / self.num_examples,
            "loss": self._sum_loss / self._num_loss_examples if self._num_loss_examples else float("nan"),
            "num_examples": int(self.num_examples),
        }


# --------------------------------------------------------------------------------------------------
# One-shot video-level functions
# --------------------------------------------------------------------------------------------------


def top_k_triplets(predictions, labels, k=20):
    """Per-video top-min(k, C) as arrays (scores, classes, is_positive), each [B, k'], ranked descending."""
    out = top_k_step_outputs(predictions, labels, k, xla_compatible=False)
    return out["top_scores"].numpy(), out["top_indices"].numpy(), out["top_labels"].numpy() > 0


def calculate_hit_at_one(predictions, actuals):
    """Mean over videos of the label of the best-scored class (ties -> lowest class index)."""
    predictions = np.asarray(predictions)
    best = np.argmax(predictions, axis=1)
    return float(np.mean(np.asarray(actuals)[np.arange(predictions.shape[0]), best] > 0))


def calculate_precision_at_equal_recall_rate(predictions, actuals):
    """Mean over videos of precision among the n best-scored classes, n = the video's positive count.

    Only classes with score > 0 count as hits; videos with no positives contribute 0 (official semantics).
    """
    out = top_k_step_outputs(predictions, actuals, 1, xla_compatible=False)
    return float(np.mean(out["perr"].numpy()))


def calculate_gap(predictions, actuals, top_k=20):
    """Global Average Precision over every video's top-k; denominator = all positives of all videos."""
    scores, _, positives = top_k_triplets(predictions, actuals, top_k)
    total = int(np.sum(np.asarray(actuals) > 0))
    return _ap_of_ranked(*_rank_by_score(scores, positives), total)


def calculate_map(predictions, actuals, top_k=20, top_n=None):
    """Mean over classes with positives of the class AP over the kept top-k triplets (see EvaluationMetrics)."""
    metrics = EvaluationMetrics(np.shape(predictions)[1], top_k=top_k, top_n=top_n)
    metrics.accumulate(predictions, actuals)
    return metrics.get()["map"]


# --------------------------------------------------------------------------------------------------
# Segment level (2019 challenge)
# --------------------------------------------------------------------------------------------------


def _segment_map_from_lists(aps, class_positives, evaluated):
    keep = evaluated & (class_positives > 0)
    return float(aps[keep].mean()) if keep.any() else float("nan")


def calculate_segment_map(
    predictions,
    labels,
    label_weights,
    k=SEGMENT_MAP_K,
    segment_top_k=None,
    class_mask=None,
    only_predicted_classes=False,
):
    """Kaggle 2019 MAP@K over classes from dense per-segment arrays.

        MAP@K = 1/|C'| sum_{c in C'} 1/m_c sum_{j=1}^{n_c} P_c(j) rel_c(j)

    For class c the candidate segments are ranked by descending score (ties: lower segment row first) and
    cut to the first K; then unrated (segment, c) pairs are removed, so they never count as errors
    (segment_eval_inference.py:137-142 truncates to top_n, then keeps rated pairs only). n_c = the rated
    pairs left, P_c(j) = precision over the first j of them, rel_c(j) = 1 if that pair is a positive rating,
    m_c = number of positive ratings of c (line 157-161), C' = classes with m_c > 0 (class absent from the
    list -> AP 0, classes with m_c = 0 skipped; mean_average_precision_calculator.py:109-110).

    Args:
      predictions, labels, label_weights: [N, C]; label_weights > 0 marks rated pairs; labels > 0 marks
        positive ratings (only rated pairs are read).
      k: per-class cut-off K (inference.py:68 caps each class at 100000 segments).
      segment_top_k: if set, a segment is a candidate only for its segment_top_k best allowed classes, as
        inference.py:100 writes only each segment's top_k classes (default there: 20).
      class_mask: optional [C] bool; other classes are neither candidates nor evaluated (the whitelist of
        segment_label_ids.csv, inference.py:242-258).
      only_predicted_classes: average only over classes with at least one candidate, as
        segment_eval_inference.py:170-182 iterates over the classes present in the submission.
    """
    predictions = np.asarray(predictions)
    n, num_classes = predictions.shape
    rated = np.asarray(label_weights) > 0
    positive = rated & (np.asarray(labels) > 0)
    allowed = np.ones(num_classes, dtype=bool) if class_mask is None else np.asarray(class_mask, dtype=bool)
    candidate = np.broadcast_to(allowed, (n, num_classes)).copy()
    if segment_top_k is not None and segment_top_k < allowed.sum():
        masked = np.where(candidate, predictions, -np.inf)
        _, top_idx = tf.math.top_k(masked, k=int(segment_top_k))
        picked = np.zeros_like(candidate)
        np.put_along_axis(picked, top_idx.numpy(), True, axis=1)
        candidate &= picked

    # Rank of each candidate among its class's candidates decides the top-K cut (only matters if > K).
    within_k = candidate.copy()
    num_candidates = candidate.sum(axis=0)
    if k is not None and np.any(num_candidates > k):
        for c in np.flatnonzero(num_candidates > k):
            rows = np.flatnonzero(candidate[:, c])
            ranked = rows[_score_order(predictions[rows, c])]
            within_k[ranked[k:], c] = False

    rows, cls = np.nonzero(rated & candidate)  # row-major: ties keep segment order
    ranked_classes, ranked_positives, ranked_keep = _rank_by_score(
        predictions[rows, cls], cls, positive[rows, cls], within_k[rows, cls]
    )
    aps = _class_aps(ranked_classes, ranked_positives, num_classes, positive.sum(axis=0), ranked_keep=ranked_keep)
    evaluated = allowed & (num_candidates > 0 if only_predicted_classes else True)
    return _segment_map_from_lists(aps, positive.sum(axis=0), evaluated)


def calculate_segment_map_from_submission(class_segments, ratings, k=SEGMENT_MAP_K):
    """MAP@K of a Kaggle 2019 submission, as segment_eval_inference.py scores it.

    Args:
      class_segments: {class_id: sequence of segment ids, best first} (one submission row per class).
      ratings: {(segment_id, class_id): score}; score > 0 is a positive rating, every key is a rated pair.
      k: per-class cut-off applied before unrated pairs are dropped.
    Averages over the submitted classes; a submitted class with no positive rating is skipped (the
    official script fails on it).
    """
    positives = {}
    for (_, c), v in ratings.items():
        if v > 0:
            positives[c] = positives.get(c, 0) + 1
    aps = []
    for c in sorted(class_segments):
        if positives.get(c, 0) <= 0:
            continue
        listed = list(class_segments[c])[:k]
        rel = [ratings[(s, c)] > 0 for s in listed if (s, c) in ratings]
        aps.append(_ap_of_ranked(np.asarray(rel, dtype=bool), positives[c]))
    return float(np.mean(aps)) if aps else float("nan")


class SegmentEvaluationMetrics(EvaluationMetrics):
    """Streaming metrics for segment-rated data (eval.py --segment_labels).

    eval.py:240-244 multiplies the predictions by label_weights (unrated pairs -> score 0) and then feeds
    the ordinary EvaluationMetrics; `accumulate` does the same, so `gap`, `map`, `hit_at_one`, `perr`, `loss`
    follow that recipe. `get()` adds `segment_map`: MAP@K (see `calculate_segment_map`) over the rated
    (segment, class) pairs seen, each class's list ranked by raw score (ties: accumulation order) and cut at
    K. Difference from Kaggle: only rated pairs are stored, so unrated segments of the submission cannot
    take ranks before the K cut-off; irrelevant while a class has at most K candidates (a class has at
    most ~250 ratings in the 2019 data).
    """

    def __init__(self, num_classes, top_k=20, top_n=None, segment_k=SEGMENT_MAP_K):
        self.segment_k = int(segment_k)
        self._rated = _GrowingColumns()
        super().__init__(num_classes, top_k=top_k, top_n=top_n)

    def clear(self):
        super().clear()
        self._rated.clear()
        self._segment_positives = np.zeros(self.num_classes, dtype=np.int64)

    def accumulate(self, predictions, labels, label_weights, loss=None):
        """Adds a [B, C] batch of segments with their [B, C] label_weights; returns the batch dict."""
        predictions = _to_numpy(predictions)
        labels = _to_numpy(labels)
        weights = _to_numpy(label_weights)
        rows, cls = np.nonzero(weights > 0)
        self.accumulate_rated(predictions[rows, cls], labels[rows, cls], cls)
        return super().accumulate(predictions * weights.astype(predictions.dtype), labels, loss)

    def accumulate_rated(self, scores, labels, classes):
        """Adds rated (score, label, class) pairs, in ranking-tie order (for use with accumulate_top_k)."""
        scores = _to_numpy(scores).reshape(-1)
        classes = _to_numpy(classes).reshape(-1)
        positive = _to_numpy(labels).reshape(-1) > 0
        self._rated.append(
            scores=scores.astype(_score_dtype(scores)),
            classes=classes.astype(_class_dtype(self.num_classes)),
            positive=positive,
        )
        self._segment_positives += np.bincount(classes[positive].astype(np.int64), minlength=self.num_classes)

    def _segment_aps(self):
        scores = self._rated.get("scores")
        classes = self._rated.get("classes", empty_dtype=np.int32)
        positive = self._rated.get("positive", empty_dtype=bool)
        return _class_aps(
            *_rank_by_score(scores, classes, positive), self.num_classes, self._segment_positives, cutoff=self.segment_k
        )

    @property
    def class_positives(self):
        """Positive rated segments per class [C] (the denominators of the per-class segment APs)."""
        return self._segment_positives.copy()

    def class_average_precisions(self):
        """Per-class segment AP@K [C], the terms `segment_map` averages; nan for classes without a positive rated
        segment (eval.py --segment_labels --class_report writes them)."""
        return np.where(self._segment_positives > 0, self._segment_aps(), np.nan)

    def get(self):
        result = super().get()
        evaluated = np.ones(self.num_classes, dtype=bool)
        result["segment_map"] = _segment_map_from_lists(self._segment_aps(), self._segment_positives, evaluated)
        return result
