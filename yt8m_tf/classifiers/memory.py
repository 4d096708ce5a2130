"""Nearest-neighbour memory head: a classifier's prediction mixed with a k-NN vote over the training videos.

Not in the paper. On small training sets (the 28.8k real 2018 videos of docs/QUALITY.md) a k-NN vote over the
MLP's own hidden representation is a different enough model that a fixed mixture of the two gains about 0.008 GAP
over the MLP alone; the memory is filled by the ordinary training loop, so `train.py` needs nothing new.
"""

import keras
import tensorflow as tf
from keras import ops

_NO_MATCH = -1e9
_CANDIDATES = 4  # memory entries compared per query fingerprint (KnnMemory._find)
_REFRESH_ROWS = 4096  # memory slots per chunk of KnnMemory.refresh_memory (a 4096 x C probability matrix at a time)


def _replica_gather(*tensors):
    """Concatenates the per-replica batches along axis 0 under a tf.distribute strategy (unchanged outside one),
    so that every replica writes the same global batch into the memory."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return tuple(context.all_gather(list(tensors), axis=0))


@keras.saving.register_keras_serializable(package="yt8m_tf")
class KnnMemory(keras.layers.Layer):
    """Wraps a classifier h that exposes `features(x, training)` / `classify(h)` (`MLP`) and adds a memory of the
    training videos it was trained on, keyed by h's last hidden layer.

    Training (`training=True`, labels given): returns h's probabilities unchanged (the loss and the gradients are
    those of h alone) and writes the batch into the memory: the L2-normalised hidden features of the clean input (no
    noise, no dropout; no gradient), the video's label ids (at most `max_labels`) and two fingerprints of the input
    that identify the video. A video already in the memory (same fingerprints: seen in an earlier epoch) is
    rewritten in its own slot with its new features; a new video takes the next slot, and once all `memory_size`
    slots are taken the oldest ones are reused (a ring). With `memory_size` at least the number of training videos
    the memory therefore ends holding every training video once, keyed by the features of the last epoch, whatever
    the shuffling (a video twice in one batch takes one slot). The batch is gathered over the replicas first, so
    every replica holds the same memory (the variables use `only_first_replica` aggregation).

    Inference: with q the normalised hidden features of the video and (s_j, y_j) the k most similar (cosine)
    memory entries,

        vote = sum_j w_j y_j / sum_j w_j,   w_j = exp((s_j - s_1) / temperature)
        O = (1 - weight) * h(x) + weight * vote

    (an entry with the same fingerprints as a more similar one gets w_j = 0: a safety net, the writes already keep
    one slot per video). An empty memory leaves h(x) unchanged. The vote costs a (B, d) x (d,
    memory_size) product per batch at inference; training adds one forward pass of h's hidden layers.

    With `output_weight` > 0 the memory also keys every video by h's own prediction for its clean input, and a
    second vote, over those keys, enters the mixture:

        key_j = the `output_entries` largest entries of sqrt(h(x_j)), L2-normalised (the rest 0)
        O = (1 - weight - output_weight) * h(x) + weight * vote + output_weight * output_vote

    where output_vote is the same weighted vote with the cosine of sqrt(h(x)) to key_j as the similarity and
    `output_temperature` as the temperature: training videos that h scores alike vote with their true labels, a
    correction of h's systematic confusions that the hidden-space vote does not make (+0.003 GAP over the
    hidden-space vote alone on the real 2018 shards, docs/QUALITY.md). The output keys are not computed while
    training: the memory stores each video's hidden-feature norm beside its key, and `refresh_memory()` (which the
    trainer calls before every checkpoint and export) recomputes every slot's output key from its stored hidden
    features with h's current output layer, about 4 s on 2 CPU cores for 32768 slots, instead of a forward pass of
    the output layer in every training step (17 % of the step). At inference the vote costs `output_entries`
    gathers of a (memory_size, B) matrix per batch.

    The keys cost memory_size x d x 2 bytes (float16): 134 MB for 32768 videos and d = 2048, saved in every
    checkpoint and export; the output keys memory_size x (output_entries x 6 + 4) bytes (6.4 MB for 32 entries).

    Args:
        classifier: the wrapped classifier (a layer or its serialized config); needs `features`, `classify` and
            `feature_size` (None: the features are the input).
        num_classes: int, number of classes C.
        memory_size: int, slots of the memory (one per training video). Default 32768.
        k: int, neighbours voting. Default 50.
        temperature: float, softmax temperature of the votes over cosine similarities. Default 0.05.
        weight: float in [0, 1], weight of the vote in the output. Default 0.3.
        max_labels: int, label ids kept per video (the most in the 28.8k real 2018 videos is 17). Default 32.
        output_weight: float, weight of the vote over output-space keys; 0 (default) keeps no such keys.
        output_temperature: float, temperature of that vote. Default 0.02.
        output_entries: int, largest entries of sqrt(h(x)) kept per output key (at most C). Default 32.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shapes: x (batch, d_in) float; labels (batch, num_classes) multi-hot, training only.
    Output shape: (batch, num_classes) float32 probabilities.
    """

    uses_labels = True

    def __init__(self, classifier, num_classes, memory_size=32768, k=50, temperature=0.05, weight=0.3, max_labels=32,
                 output_weight=0.0, output_temperature=0.02, output_entries=32, **kwargs):
        super().__init__(**kwargs)
        if isinstance(classifier, dict):
            classifier = keras.saving.deserialize_keras_object(classifier)
        if not all(hasattr(classifier, name) for name in ("features", "classify", "feature_size")):
            raise ValueError(f"KnnMemory needs a classifier with features()/classify() (MLP), not "
                             f"{type(classifier).__name__}")
        if not 1 <= k <= memory_size:
            raise ValueError(f"KnnMemory needs 1 <= k <= memory_size, got k={k}, memory_size={memory_size}")
        if not 0.0 <= weight <= 1.0 or temperature <= 0:
            raise ValueError(f"KnnMemory needs 0 <= weight <= 1 and temperature > 0 (got {weight}, {temperature})")
        if output_weight < 0 or weight + output_weight > 1.0 or output_temperature <= 0 or output_entries < 1:
            raise ValueError(f"KnnMemory needs output_weight >= 0, weight + output_weight <= 1, output_temperature > 0 "
                             f"and output_entries >= 1 (got {output_weight}, {weight}, {output_temperature}, "
                             f"{output_entries})")
        self.classifier = classifier
        self.num_classes = num_classes
        self.memory_size = memory_size
        self.k = k
        self.temperature = temperature
        self.weight = weight
        self.max_labels = max_labels
        self.output_weight = output_weight
        self.output_temperature = output_temperature
        self.output_entries = min(output_entries, num_classes)

    def build(self, input_shape):
        if not self.classifier.built:  # a deserialized classifier comes built
            self.classifier.build(input_shape)
        width = self.classifier.feature_size or input_shape[-1]
        common = {"trainable": False, "autocast": False, "aggregation": "only_first_replica"}
        self.keys = self.add_weight(shape=(self.memory_size, width), initializer="zeros", dtype="float16",
                                    name="keys", **common)
        self.label_ids = self.add_weight(shape=(self.memory_size, self.max_labels),
                                         initializer=keras.initializers.Constant(-1), dtype="int32",
                                         name="label_ids", **common)
        self.fingerprints = self.add_weight(shape=(self.memory_size, 2), initializer="zeros", dtype="float32",
                                            name="fingerprints", **common)
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int64", name="count", **common)
        if self.output_weight:
            self.key_norms = self.add_weight(shape=(self.memory_size,), initializer="zeros", dtype="float32",
                                             name="key_norms", **common)
            self.output_ids = self.add_weight(shape=(self.memory_size, self.output_entries), initializer="zeros",
                                              dtype="int32", name="output_ids", **common)
            self.output_values = self.add_weight(shape=(self.memory_size, self.output_entries), initializer="zeros",
                                                 dtype="float16", name="output_values", **common)

    @staticmethod
    def slot_bytes(width, num_classes, max_labels=32, output_weight=0.0, output_entries=32):
        """Bytes per video of the variables `build` makes (the defaults are the constructor's)."""
        size = width * 2 + max_labels * 4 + 2 * 4  # keys float16, label ids int32, fingerprints float32
        if output_weight:
            size += 4 + min(output_entries, num_classes) * (4 + 2)  # norm float32, output ids int32, values float16
        return size

    # ---- helpers --------------------------------------------------------------------------------------------------
    @staticmethod
    def _normalize(h):
        h = ops.cast(h, "float32")
        return h / ops.maximum(ops.sqrt(ops.sum(ops.square(h), axis=-1, keepdims=True)), 1e-12)

    @staticmethod
    def fingerprint(x):
        """(B, 2): two fixed projections of each input vector; equal inputs give equal values (a video's identity)."""
        x = ops.cast(x, "float32")
        index = ops.cast(ops.arange(ops.shape(x)[-1]), "float32")
        probes = ops.stack([ops.cos(index * 0.7071 + 0.3), ops.sin(index * 1.618 + 0.7)], axis=-1)
        return ops.matmul(x, probes)

    @staticmethod
    def _same(a, b):
        """Fingerprints equal up to float rounding (both projections), broadcasting a (..., 2) against b."""
        close = ops.abs(a - b) <= 1e-6 * (1.0 + ops.abs(b))
        return close[..., 0] & close[..., 1]

    @staticmethod
    def _root(probabilities):
        return ops.sqrt(ops.maximum(ops.cast(probabilities, "float32"), 0.0))

    def _output_key(self, probabilities):
        """(ids, values), each (B, output_entries): the largest entries of sqrt(p), L2-normalised among themselves."""
        values, ids = ops.top_k(self._root(probabilities), k=self.output_entries)
        return ops.cast(ids, "int32"), self._normalize(values)

    def _label_ids(self, labels):
        values, ids = ops.top_k(ops.cast(labels, "float32"), k=min(self.max_labels, self.num_classes))
        ids = ops.where(values > 0, ops.cast(ids, "int32"), -1)
        if self.max_labels > self.num_classes:
            ids = ops.pad(ids, [[0, 0], [0, self.max_labels - self.num_classes]], constant_values=-1)
        return ids

    def _find(self, fingerprints):
        """(seen (B,) bool, slot (B,) int64): whether each fingerprint is already in the memory, and where.

        The memory's fingerprints are sorted by their first projection and each query looks at the `_CANDIDATES`
        entries from the first one within tolerance: O(M log M + B log M) instead of comparing all B x M pairs
        (which cost as much as the training step itself at M = 32768). A miss needs more than `_CANDIDATES`
        other videos within 1e-6 (relative) of the same first projection."""
        stored = ops.convert_to_tensor(self.fingerprints)
        filled = ops.minimum(ops.convert_to_tensor(self.count), self.memory_size)
        valid = ops.arange(self.memory_size, dtype="int64") < filled
        first = ops.where(valid, stored[:, 0], float("inf"))  # empty slots sort last
        order = ops.argsort(first)
        query = fingerprints[:, 0]
        low = ops.searchsorted(ops.take(first, order), query - 1e-6 * (1.0 + ops.abs(query)), side="left")
        positions = ops.minimum(ops.cast(low, "int64")[:, None] + ops.arange(_CANDIDATES, dtype="int64"),
                                self.memory_size - 1)
        slots = ops.take(ops.cast(order, "int64"), positions)  # (B, _CANDIDATES)
        match = self._same(fingerprints[:, None, :], ops.take(stored, slots, axis=0)) & ops.take(valid, slots)
        hit = ops.argmax(ops.cast(match, "int32"), axis=1)
        return ops.any(match, axis=1), ops.take_along_axis(slots, hit[:, None], axis=1)[:, 0]

    def _write(self, features, label_ids, fingerprints):
        features, label_ids, fingerprints = _replica_gather(ops.cast(features, "float32"), label_ids, fingerprints)
        count = ops.convert_to_tensor(self.count)  # slots ever taken by a new video
        seen, known_slots = self._find(fingerprints)
        # A video twice in one batch (possible at epoch boundaries) takes one slot: its first occurrence's.
        n = ops.shape(fingerprints)[0]
        order = ops.arange(n)
        same = self._same(fingerprints[:, None, :], fingerprints[None]) & (order[None, :] <= order[:, None])
        first = ops.argmax(ops.cast(same, "int32"), axis=1)  # index of the first occurrence in the batch
        new = ops.cast(~seen & (first == order), "int64")
        new_slots = ops.take((count + ops.cumsum(new) - new) % self.memory_size, first)
        slots = ops.where(seen, known_slots, new_slots)
        # In-place scatters (a ring buffer of up to hundreds of MB must not be copied every step).
        self.keys.value.scatter_update(tf.IndexedSlices(ops.cast(self._normalize(features), "float16"), slots))
        self.label_ids.value.scatter_update(tf.IndexedSlices(label_ids, slots))
        self.fingerprints.value.scatter_update(tf.IndexedSlices(fingerprints, slots))
        if self.output_weight:
            norms = ops.sqrt(ops.sum(ops.square(features), axis=-1))
            self.key_norms.value.scatter_update(tf.IndexedSlices(norms, slots))
        self.count.assign_add(ops.sum(new))

    def refresh_memory(self):
        """Recomputes the output keys of all slots from their stored hidden features (key x norm) with h's current
        weights; a no-op without the output-space vote. Slots not yet filled get keys too, which the vote ignores."""
        if not self.output_weight:
            return
        keys, norms = ops.convert_to_tensor(self.keys), ops.convert_to_tensor(self.key_norms)
        ids, values = [], []
        for start in range(0, self.memory_size, _REFRESH_ROWS):
            rows = slice(start, start + _REFRESH_ROWS)
            hidden = ops.cast(keys[rows], "float32") * norms[rows][:, None]
            chunk_ids, chunk_values = self._output_key(self.classifier.classify(hidden))
            ids.append(chunk_ids)
            values.append(chunk_values)
        self.output_ids.assign(ops.concatenate(ids, axis=0))
        self.output_values.assign(ops.cast(ops.concatenate(values, axis=0), "float16"))

    def _output_similarities(self, probabilities):
        """(B, memory_size) cosines of the normalised sqrt(p) to the sparse output keys, one gather per entry: rows
        of the transposed (C, B) query, 2.7x faster on CPU than gathering its columns."""
        query = ops.transpose(self._normalize(self._root(probabilities)))
        ids = ops.convert_to_tensor(self.output_ids)
        values = ops.cast(ops.convert_to_tensor(self.output_values), "float32")
        sims = ops.zeros((self.memory_size, ops.shape(query)[1]), "float32")
        for j in range(self.output_entries):
            sims = sims + ops.take(query, ids[:, j], axis=0) * values[:, j:j + 1]
        return ops.transpose(sims)

    def vote(self, query, return_found=False, output_space=False):
        """k-NN vote (B, C) of normalised queries (B, d) over the memory; with `return_found` also (B, 1) 1.0 where
        at least one memory entry exists. With `output_space` the query is h's probabilities (B, C) and the vote is
        over the output keys (with `output_temperature`)."""
        filled = ops.minimum(ops.convert_to_tensor(self.count), self.memory_size)
        valid = ops.arange(self.memory_size, dtype="int64") < filled
        if output_space:
            sims, temperature = self._output_similarities(query), self.output_temperature
        else:
            keys = ops.cast(ops.convert_to_tensor(self.keys), "float32")
            sims, temperature = ops.matmul(query, ops.transpose(keys)), self.temperature
        sims = ops.where(valid[None, :], sims, _NO_MATCH)
        top, idx = ops.top_k(sims, k=self.k)
        found = top > _NO_MATCH / 2
        prints = ops.take(ops.convert_to_tensor(self.fingerprints), idx, axis=0)  # (B, k, 2)
        same = self._same(prints[:, :, None, :], prints[:, None, :, :])
        earlier = ops.triu(ops.ones((self.k, self.k), "bool"), k=1)[None]  # [i, j]: i < j
        duplicate = ops.any(same & earlier & found[:, :, None], axis=1)
        keep = ops.cast(found & ~duplicate, "float32")
        weights = ops.exp((top - top[:, :1]) / temperature) * keep
        ids = ops.take(ops.convert_to_tensor(self.label_ids), idx, axis=0)  # (B, k, L)
        batch = ops.shape(ids)[0]
        rows = ops.broadcast_to(ops.reshape(ops.arange(batch, dtype="int32"), (-1, 1, 1)), ops.shape(ids))
        cols = ops.where(ids >= 0, ids, self.num_classes)  # padding -> a spare column, dropped
        values = ops.broadcast_to(weights[:, :, None], ops.shape(ids))
        votes = ops.scatter(ops.reshape(ops.stack([rows, cols], axis=-1), (-1, 2)), ops.reshape(values, (-1,)),
                            (batch, self.num_classes + 1))[:, :self.num_classes]
        total = ops.sum(weights, axis=-1, keepdims=True)
        votes = votes / ops.maximum(total, 1e-12)
        if return_found:
            return votes, ops.cast(total > 0, "float32")
        return votes

    def capacity_note(self):
        """One line when more videos were written than the memory has slots (it then holds only the most recent
        `memory_size` training videos), else None; the trainer prints it after training."""
        written = int(ops.convert_to_numpy(self.count))
        if written <= self.memory_size:
            return None
        return (f"the k-NN memory wrapped ({written} videos written into {self.memory_size} slots): it holds only "
                f"the most recent {self.memory_size} training videos; raise --knn_memory_size to keep them all")

    # ---- the layer ------------------------------------------------------------------------------------------------
    def call(self, x, labels=None, training=None):
        hidden = self.classifier.features(x, training=training)
        predictions = ops.cast(self.classifier.classify(hidden), "float32")
        if training:
            if labels is not None:
                clean = ops.stop_gradient(self.classifier.features(x, training=False))
                self._write(clean, self._label_ids(labels), self.fingerprint(x))
            return predictions
        votes, found = self.vote(self._normalize(hidden), return_found=True)
        outputs = (1.0 - (self.weight + self.output_weight) * found) * predictions + self.weight * found * votes
        if self.output_weight:
            outputs += self.output_weight * found * self.vote(predictions, output_space=True)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update({
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "num_classes": self.num_classes,
            "memory_size": self.memory_size,
            "k": self.k,
            "temperature": self.temperature,
            "weight": self.weight,
            "max_labels": self.max_labels,
            "output_weight": self.output_weight,
            "output_temperature": self.output_temperature,
            "output_entries": self.output_entries,
        })
        return config
