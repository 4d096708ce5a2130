"""Synthetic YouTube-8M data written in the official TFRecord layout, byte-compatible with the real files.

The real dataset cannot ship with the project, so tests, the demo and the benchmarks read files written here.
``python -m yt8m_tf.synthetic --output_dir DIR`` (console script ``yt8m-synthetic``) writes them; see ``main``.

Record layouts (official)
-------------------------
* Video level, ``tf.train.Example``: ``id`` (2018, "v2") or ``video_id`` (2017, "v1") bytes; ``labels`` int64 list
  (absent in test files); ``mean_rgb`` float list [1024]; ``mean_audio`` float list [128].
* Frame level, ``tf.train.SequenceExample``: context ``id``/``video_id`` bytes and ``labels`` int64 list (absent in
  test files); feature lists ``rgb`` and ``audio`` with one bytes value per frame holding 1024 / 128 uint8 codes
  (``yt8m_tf.quantization``). 2019 segment-rated files add context ``segment_labels`` (int64), ``segment_start_times``
  (int64, multiples of 5), ``segment_end_times`` (int64, start + 5) and ``segment_scores`` (float, 0/1 ratings), one
  entry per rated (5-frame segment, class) pair.

Byte layout (measured on the real files in ../shared/data/yt8m)
---------------------------------------------------------------
The records are plain proto3 wire format: packed int64/float lists, a map entry per feature, both key and value of
every map entry written, an empty-but-present list written as an empty sub-message (``labels: []`` -> ``1a 00``).
Two details a generic serializer gets wrong, so this module encodes the wire format itself:

* **Feature order is the writer's hash-map iteration order, not sorted and not fixed.** The 28,792 real 2018 records
  use three rotations of the cycle (id, labels, mean_rgb, mean_audio): ``mean_rgb, mean_audio, id, labels`` (48%),
  ``labels, mean_rgb, mean_audio, id`` (26%) and ``id, labels, mean_rgb, mean_audio`` (26%); the 2017 validate
  records use ``labels, mean_rgb, mean_audio, video_id`` (50%) and ``mean_rgb, mean_audio, video_id, labels`` (50%);
  the 2017 test records (no labels) always use ``mean_audio, mean_rgb, video_id``. Python's protobuf re-serializes
  parsed records in yet another order, so ``Example.FromString(raw).SerializeToString() != raw``. Every order parses
  identically; the writer uses one observed order per flavour (``VIDEO_KEY_ORDERS``) and takes ``key_order`` to
  reproduce any record exactly (``wire_layout`` reads a record's order).
* **2018 video-level records carry an empty field 2** (``12 00`` after the features): they are serialized as a
  ``SequenceExample`` whose ``feature_lists`` is present but empty. ``tf.train.Example`` parsers skip the unknown
  field, ``SequenceExample`` parsers see zero feature lists. The 2017 records have no field 2. ``video_example``
  reproduces this (``empty_feature_lists`` defaults to True for ``id_key="id"``), so its output equals the real bytes.

No real frame-level or segment-rated file is available here; frame-level records follow the same rules (context order
``id, labels, segment_labels, segment_start_times, segment_end_times, segment_scores`` for 2018 and ``labels,
video_id`` first for 2017; feature lists ``rgb, audio``), and ``context_order``/``feature_list_order`` can change it.

Files: ``write_dataset`` names shards ``f"{prefix}{i:04d}.tfrecord"`` for both releases (``train0000.tfrecord``, ...),
writes each to a hidden temporary name in ``output_dir`` and renames it, and touches nothing else there.

What is learnable (the structure the paper's components exploit)
----------------------------------------------------------------
A fixed "world" (``make_world``; depends only on num_classes, feature sizes and ``world_seed``, so train and validate
sets written with different seeds share it) holds per-class prototypes and the label structure:

* **Class imbalance**: class ``c`` is drawn with probability proportional to ``(c + 1) ** -1.0`` (class 0 is the most
  frequent, as in the official vocabulary, whose counts fall off with exponent ~1.0-1.1). A video has
  ``1 + Poisson(0.7)`` primary labels drawn this way.
* **Label correlation**: classes form small topic groups (sizes 1-4, members of similar popularity: groups are cut from
  shuffled windows of 16 consecutive ranks). Each primary label brings each of its group mates with probability 0.5,
  so P(b | a) is about 0.5 for mates against P(b) of a few percent at most. Videos average about 2.8 labels (real: 3.0).
* **Main scene**: each video is a sequence of shots (2-8 frames). A fraction U(0.45, 0.75) of the shots show the
  "main scene" = sum of the rgb prototypes of the video's labels / sqrt(count) (a random filler scene when no label
  is visible); the others are distractor shots (one of 32 label-free filler scenes, or the prototype of a uniformly
  random class). Every frame adds Gaussian noise, a
  per-video offset and a dataset mean. Mean / attention pooling sees the label mixture; one random frame is often a
  distractor, so single-frame models lose.
* **Order-only evidence**: ``order_pairs`` are pairs of mutually exclusive classes (c_ab, c_ba) with two scenes A, B
  and a shared sound. A c_ab video shows A in the first half of its main-scene frames and B in the second; c_ba shows
  B then A. Their bags of frames (and means) have the same distribution: only temporal models can tell them apart.
* **Audio-only evidence**: ``audio_only_classes`` have a zero rgb prototype and a strong audio prototype; other
  classes have weaker audio prototypes. Audio frames follow the shots: main-scene shots play the labels' sounds,
  distractor shots the distractor's sound.
* **Segments** (2019 layout, ``segments=True``): up to 2 of a video's labels that are candidate segment classes are
  local: shown alone in one or two windows of 5-10 frames and nowhere else (``sample_video``). Up to 5 of the
  video's 5-frame segments are rated per local class, up to 3 of them showing it (score 1: at least 3 of the 5
  frames in its windows), the others not (score 0). Which segments show the class is learnable from the segment's
  frames; a model of whole videos also guesses it from the classes it co-occurs with, so training on the ratings
  gains over a video-level model (tests/test_segments.py).

Features have real-like magnitudes (PCA-like per-dimension scale falling from 1.3 to 0.8 across dims; video-level
per-dimension std about 0.36 / 0.38 against 0.45 / 0.69 for real rgb / audio; 0.15% of frame values clip). Frames
are quantized with ``yt8m_tf.quantization.quantize``, so dequantized values lie in [-1.9921875, 2.0078125]. Video-level
files hold the
float32 means of the dequantized frames of exactly the videos the frame-level writer emits for the same arguments
(a 0-frame video gets zeros, as ``masking.masked_mean`` gives). Video ``i`` of a dataset depends only on (seed,
prefix, i) and the world, not on the shard split; train/validate sets with the same seed but different prefixes
differ. Ids are random 4-character (2018) or 11-character (2017) strings, unique within a dataset.
"""

import argparse
import functools
import os
import sys
import zlib
from dataclasses import dataclass

import numpy as np

from yt8m_tf.quantization import dequantize, quantize

__all__ = [
    "DEFAULT_NUM_CLASSES", "VIDEO_KEY_ORDERS", "SyntheticWorld", "make_world", "sample_video", "video_example",
    "frame_example", "wire_layout", "write_dataset", "shard_names", "main",
]

DEFAULT_NUM_CLASSES = {"2018": 3862, "2017": 4716}
ID_KEYS = {"2018": "id", "2017": "video_id"}
SEGMENT_FRAMES = 5

# Feature order per (id_key, has labels): one order observed on real files (see the module docstring).
VIDEO_KEY_ORDERS = {
    ("id", True): ("id", "labels", "mean_rgb", "mean_audio"),
    ("id", False): ("id", "mean_rgb", "mean_audio"),
    ("video_id", True): ("labels", "mean_rgb", "mean_audio", "video_id"),
    ("video_id", False): ("mean_audio", "mean_rgb", "video_id"),
}
_SEGMENT_KEYS = ("segment_labels", "segment_start_times", "segment_end_times", "segment_scores")

# Generator constants (documented in the module docstring).
POWER_LAW_EXPONENT = 1.0
MEAN_EXTRA_PRIMARY_LABELS = 0.7
MAX_PRIMARY_LABELS = 6
GROUP_WINDOW = 16
GROUP_SIZE_PROBS = (0.3, 0.35, 0.25, 0.1)  # sizes 1, 2, 3, 4
CO_OCCURRENCE_PROB = 0.5
MAIN_FRACTION_RANGE = (0.45, 0.75)
SHOT_LENGTH_RANGE = (2, 8)
NUM_FILLER_SCENES = 32
FILLER_DISTRACTOR_PROB = 0.5
RGB_SCENE_SCALE = 0.45
RGB_NOISE = 0.3
RGB_VIDEO_OFFSET = 0.15
AUDIO_SCENE_SCALE = 0.8
AUDIO_WEAK_FACTOR = 0.5
AUDIO_NOISE = 0.45
AUDIO_VIDEO_OFFSET = 0.2
DATASET_MEAN_SCALE = 0.05
MAX_RATED_CLASSES = 2
MAX_RATED_SEGMENTS = 5
LOCAL_WINDOW_RANGE = (5, 10)  # frames of one window of a segment class (segment datasets)

_ID_ALPHABETS = {
    "id": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "video_id": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_",
}
_ID_LENGTHS = {"id": 4, "video_id": 11}


# ---------------------------------------------------------------------------------------------------------------
# Protobuf wire format (Example / SequenceExample), written by hand so the byte layout is under control.
# ---------------------------------------------------------------------------------------------------------------

def _varint(value):
    value = int(value)
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number, payload):
    """A length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _as_bytes(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        return bytes(value)
    raise TypeError(f"expected str or bytes, got {type(value).__name__}")


def _bytes_feature(values):
    return _field(1, b"".join(_field(1, _as_bytes(v)) for v in values))


def _float_feature(values):
    packed = np.asarray(values, dtype="<f4").reshape(-1).tobytes()
    return _field(2, _field(1, packed) if packed else b"")


def _int64_feature(values):
    packed = b"".join(_varint(v) for v in np.asarray(values, dtype=np.int64).reshape(-1).tolist())
    return _field(3, _field(1, packed) if packed else b"")


def _features(entries, order, what):
    """Features message: one map entry per key, in ``order`` (a permutation of the keys of ``entries``)."""
    order = tuple(order)
    if sorted(order) != sorted(entries):
        raise ValueError(f"{what} must list exactly the keys {sorted(entries)}, got {list(order)}")
    return b"".join(_field(1, _field(1, key.encode("utf-8")) + _field(2, entries[key])) for key in order)


def _frame_feature_list(codes):
    """FeatureList of one bytes value per frame, vectorised: each frame is a fixed header + its uint8 codes."""
    size = codes.shape[1]
    value = b"\x0a" + _varint(size)  # BytesList.value header
    bytes_list_len = len(value) + size
    bytes_list = b"\x0a" + _varint(bytes_list_len)  # Feature.bytes_list header
    feature_len = len(bytes_list) + bytes_list_len
    header = b"\x0a" + _varint(feature_len) + bytes_list + value  # FeatureList.feature header
    rows = np.empty((codes.shape[0], len(header) + size), np.uint8)
    rows[:, :len(header)] = np.frombuffer(header, np.uint8)
    rows[:, len(header):] = codes
    return rows.tobytes()


def video_example(video_id, labels, mean_rgb, mean_audio, id_key="id", key_order=None, empty_feature_lists=None):
    """One video-level record (serialized ``tf.train.Example``), laid out like the official files.

    ``labels`` None writes no ``labels`` key (test files); label order is kept as given. Feature values are written
    as float32. ``key_order`` (a permutation of the written keys) overrides ``VIDEO_KEY_ORDERS``;
    ``empty_feature_lists`` (default: True for ``id_key="id"``, the 2018 layout) appends the empty field 2.
    """
    entries = {id_key: _bytes_feature([video_id]),
               "mean_rgb": _float_feature(mean_rgb),
               "mean_audio": _float_feature(mean_audio)}
    if labels is not None:
        entries["labels"] = _int64_feature(labels)
    if key_order is None:
        key_order = VIDEO_KEY_ORDERS.get((id_key, labels is not None))
        if key_order is None:
            key_order = (id_key,) + (("labels",) if labels is not None else ()) + ("mean_rgb", "mean_audio")
    if empty_feature_lists is None:
        empty_feature_lists = id_key == "id"
    out = _field(1, _features(entries, key_order, "key_order"))
    if empty_feature_lists:
        out += _field(2, b"")
    return out


def _frame_codes(frames, name):
    frames = np.asarray(frames)
    if frames.ndim != 2:
        if frames.size == 0:
            return np.zeros((0, 0), np.uint8)
        raise ValueError(f"{name} must be 2-D [frames, features], got shape {frames.shape}")
    if frames.dtype == np.uint8:
        return np.ascontiguousarray(frames)
    if np.issubdtype(frames.dtype, np.floating):
        return quantize(frames)
    raise TypeError(f"{name} must be uint8 codes or float values, got dtype {frames.dtype}")


def frame_example(video_id, labels, rgb, audio, id_key="id", segments=None, context_order=None,
                  feature_list_order=("rgb", "audio")):
    """One frame-level record (serialized ``tf.train.SequenceExample``).

    ``rgb`` [T, 1024] / ``audio`` [T, 128]: uint8 codes, or floats that are quantized. ``labels`` None writes no
    ``labels`` key. ``segments``: optional dict with ``labels``, ``start_times``, ``scores`` (and optionally
    ``end_times``, default start + 5) written as the 2019 context keys, even when empty. ``context_order`` /
    ``feature_list_order`` override the default key orders.
    """
    rgb = _frame_codes(rgb, "rgb")
    audio = _frame_codes(audio, "audio")
    if rgb.shape[0] != audio.shape[0]:
        raise ValueError(f"rgb has {rgb.shape[0]} frames but audio has {audio.shape[0]}")
    context = {id_key: _bytes_feature([video_id])}
    if labels is not None:
        context["labels"] = _int64_feature(labels)
    if segments is not None:
        seg_labels = np.asarray(segments["labels"], np.int64).reshape(-1)
        starts = np.asarray(segments["start_times"], np.int64).reshape(-1)
        ends = segments.get("end_times")
        ends = starts + SEGMENT_FRAMES if ends is None else np.asarray(ends, np.int64).reshape(-1)
        scores = np.asarray(segments["scores"], np.float32).reshape(-1)
        if not len(seg_labels) == len(starts) == len(ends) == len(scores):
            raise ValueError("segments labels, start_times, end_times and scores must have the same length")
        context.update({"segment_labels": _int64_feature(seg_labels),
                        "segment_start_times": _int64_feature(starts),
                        "segment_end_times": _int64_feature(ends),
                        "segment_scores": _float_feature(scores)})
    if context_order is None:
        base = (id_key, "labels") if id_key == "id" else ("labels", id_key)
        context_order = tuple(k for k in base + _SEGMENT_KEYS if k in context)
    lists = {"rgb": _frame_feature_list(rgb), "audio": _frame_feature_list(audio)}
    return (_field(1, _features(context, context_order, "context_order"))
            + _field(2, _features(lists, feature_list_order, "feature_list_order")))


def _read_varint(buf, pos):
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _iter_fields(buf):
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = _read_varint(buf, pos)
            yield number, buf[pos:pos + length]
            pos += length
        elif wire == 0:
            value, pos = _read_varint(buf, pos)
            yield number, value
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            yield number, buf[pos:pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _map_keys(buf):
    keys = []
    for number, entry in _iter_fields(buf):
        if number == 1:
            keys.extend(bytes(v).decode("utf-8") for n, v in _iter_fields(entry) if n == 1)
    return keys


def wire_layout(serialized):
    """The key order of a serialized Example / SequenceExample, as written on the wire.

    Returns ``{"features": [keys of field 1 in order], "feature_lists": [keys of field 2] or None when absent}``
    (an empty list means field 2 is present but empty, as in 2018 video-level files).
    """
    buf = memoryview(bytes(serialized))
    features, lists = [], None
    for number, payload in _iter_fields(buf):
        if number == 1:
            features.extend(_map_keys(payload))
        elif number == 2:
            lists = (lists or []) + _map_keys(payload)
    return {"features": features, "feature_lists": lists}


# ---------------------------------------------------------------------------------------------------------------
# The generator.
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """The fixed structure every synthetic video is drawn from (arrays are read-only)."""

    num_classes: int
    rgb_size: int
    audio_size: int
    class_probs: np.ndarray        # (C,) power-law popularity, descending with the class id
    groups: tuple                  # topic groups: tuples of co-occurring class ids
    group_of: np.ndarray           # (C,) index into groups
    order_pairs: tuple             # ((c_ab, c_ba), ...): evidence only in the order of scenes A and B
    audio_only_classes: tuple      # classes with no rgb evidence
    segment_classes: tuple         # default candidate classes for segment ratings
    rgb_prototypes: np.ndarray     # (C, rgb_size), zero rows for order and audio-only classes
    audio_prototypes: np.ndarray   # (C, audio_size)
    order_scenes: np.ndarray       # (len(order_pairs), 2, rgb_size): scenes A and B
    filler_rgb: np.ndarray         # (NUM_FILLER_SCENES, rgb_size) label-free distractor scenes
    filler_audio: np.ndarray       # (NUM_FILLER_SCENES, audio_size)
    rgb_mean: np.ndarray           # (rgb_size,)
    audio_mean: np.ndarray         # (audio_size,)
    rgb_scale: np.ndarray          # (rgb_size,) PCA-like per-dimension scale
    audio_scale: np.ndarray        # (audio_size,)


def _dim_scale(size):
    return np.linspace(1.3, 0.8, size).astype(np.float32)


def _readonly(array):
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=8)
def make_world(num_classes, rgb_size=1024, audio_size=128, world_seed=0):
    """The label structure and prototypes (cached; independent of the per-dataset seed)."""
    num_classes, rgb_size, audio_size = int(num_classes), int(rgb_size), int(audio_size)
    if num_classes < 1 or rgb_size < 1 or audio_size < 1:
        raise ValueError("num_classes, rgb_size and audio_size must be positive")
    rng = np.random.default_rng([int(world_seed), 0x59384D])
    ranks = np.arange(num_classes, dtype=np.float64)
    probs = (ranks + 1.0) ** -POWER_LAW_EXPONENT
    probs /= probs.sum()

    # Special classes: order pairs and audio-only classes, among the frequent ranks (not the top 3).
    n_special = int(np.clip(num_classes // 250, 1, 8)) if num_classes >= 8 else 0
    pool = np.arange(3, min(num_classes, 3 + 6 * 3 * max(n_special, 1)))
    special = rng.choice(pool, size=3 * n_special, replace=False) if n_special else np.zeros(0, np.int64)
    order_pairs = tuple((int(special[2 * i]), int(special[2 * i + 1])) for i in range(n_special))
    audio_only = tuple(sorted(int(c) for c in special[2 * n_special:]))
    special_set = set(int(c) for c in special)

    # Topic groups cut from shuffled windows of similar popularity; special classes stay alone.
    groups = []
    for start in range(0, num_classes, GROUP_WINDOW):
        window = [c for c in rng.permutation(np.arange(start, min(start + GROUP_WINDOW, num_classes))).tolist()
                  if c not in special_set]
        while window:
            size = int(rng.choice(len(GROUP_SIZE_PROBS), p=GROUP_SIZE_PROBS)) + 1
            groups.append(tuple(sorted(window[:size])))
            window = window[size:]
    groups.extend((c,) for c in sorted(special_set))
    groups.sort()
    group_of = np.empty(num_classes, np.int64)
    for index, members in enumerate(groups):
        group_of[list(members)] = index

    rgb_scale, audio_scale = _dim_scale(rgb_size), _dim_scale(audio_size)
    rgb_protos = (rng.standard_normal((num_classes, rgb_size), np.float32) * RGB_SCENE_SCALE) * rgb_scale
    audio_protos = (rng.standard_normal((num_classes, audio_size), np.float32) * AUDIO_SCENE_SCALE) * audio_scale
    audio_protos *= AUDIO_WEAK_FACTOR
    order_scenes = (rng.standard_normal((len(order_pairs), 2, rgb_size), np.float32) * RGB_SCENE_SCALE) * rgb_scale
    for c_ab, c_ba in order_pairs:
        rgb_protos[[c_ab, c_ba]] = 0.0
        audio_protos[c_ba] = audio_protos[c_ab]  # shared sound: audio cannot tell the pair apart
    for c in audio_only:
        rgb_protos[c] = 0.0
        audio_protos[c] /= AUDIO_WEAK_FACTOR  # full-strength sound
    filler_rgb = (rng.standard_normal((NUM_FILLER_SCENES, rgb_size), np.float32) * RGB_SCENE_SCALE) * rgb_scale
    filler_audio = (rng.standard_normal((NUM_FILLER_SCENES, audio_size), np.float32) * AUDIO_SCENE_SCALE
                    * audio_scale)
    rgb_mean = rng.standard_normal(rgb_size).astype(np.float32) * DATASET_MEAN_SCALE
    audio_mean = rng.standard_normal(audio_size).astype(np.float32) * DATASET_MEAN_SCALE
    if num_classes <= 1000:
        segment_classes = tuple(range(num_classes))
    else:
        segment_classes = tuple(sorted(rng.choice(num_classes, size=1000, replace=False).tolist()))
    return SyntheticWorld(
        num_classes=num_classes, rgb_size=rgb_size, audio_size=audio_size, class_probs=_readonly(probs),
        groups=tuple(groups), group_of=_readonly(group_of), order_pairs=order_pairs, audio_only_classes=audio_only,
        segment_classes=segment_classes, rgb_prototypes=_readonly(rgb_protos),
        audio_prototypes=_readonly(audio_protos), order_scenes=_readonly(order_scenes),
        filler_rgb=_readonly(filler_rgb), filler_audio=_readonly(filler_audio), rgb_mean=_readonly(rgb_mean),
        audio_mean=_readonly(audio_mean), rgb_scale=_readonly(rgb_scale), audio_scale=_readonly(audio_scale))


@functools.lru_cache(maxsize=8)
def _order_lookup(world):
    lookup = {}
    for index, (c_ab, c_ba) in enumerate(world.order_pairs):
        lookup[c_ab] = (index, 0)
        lookup[c_ba] = (index, 1)
    return lookup


@functools.lru_cache(maxsize=8)
def _cdf(world):
    cdf = np.cumsum(world.class_probs)
    cdf[-1] = 1.0
    return cdf


def _sample_labels(world, rng):
    order = _order_lookup(world)
    count = min(1 + int(rng.poisson(MEAN_EXTRA_PRIMARY_LABELS)), MAX_PRIMARY_LABELS)
    primaries = np.searchsorted(_cdf(world), rng.random(count), side="right")
    primaries = np.minimum(primaries, world.num_classes - 1).tolist()
    labels, seen_order = [], False
    for c in primaries:
        if c in order:  # at most one order-pair class per video
            if seen_order:
                continue
            seen_order = True
        mates = [m for m in world.groups[world.group_of[c]] if m != c]
        keep = rng.random(len(mates)) < CO_OCCURRENCE_PROB
        labels.append(c)
        labels.extend(m for m, k in zip(mates, keep) if k)
    return np.array(sorted(set(labels)), np.int64)


def sample_video(world, rng, num_frames, local_candidates=None):
    """Draws one video: ``dict(labels, rgb, audio, main, visible)`` with uint8 codes [T, D], [T, A], the bool
    main-scene mask [T] and ``visible`` {class: bool [T]} of the video's local classes.

    ``local_candidates`` (segment datasets): up to MAX_RATED_CLASSES of the video's labels that are in it (not
    order-pair classes) become local classes: left out of the main scene, each is shown alone (its own rgb and
    audio prototype) in one or two windows of 5-10 frames, which also leave the main scene. Which 5-frame segments
    show such a class is then learnable from their frames, while a model of the whole video can also guess it from
    the classes it co-occurs with. None: no local class and the same draws as before segment datasets existed.
    """
    labels = _sample_labels(world, rng)
    order = _order_lookup(world)
    order_labels = [order[c] for c in labels.tolist() if c in order]
    local = []
    if local_candidates is not None:
        local = [c for c in labels.tolist() if c in local_candidates and c not in order]
        if len(local) > MAX_RATED_CLASSES:
            local = sorted(rng.choice(local, size=MAX_RATED_CLASSES, replace=False).tolist())
    plain = [c for c in labels.tolist() if c not in order and c not in local]

    # Shots: lengths 2..8, each a main-scene shot with probability main_fraction.
    lo, hi = SHOT_LENGTH_RANGE
    lengths = rng.integers(lo, hi + 1, size=max(num_frames // lo + 1, 1))
    shot_of_frame = np.repeat(np.arange(len(lengths)), lengths)[:num_frames]
    n_shots = int(shot_of_frame[-1]) + 1 if num_frames else 0
    main_fraction = rng.uniform(*MAIN_FRACTION_RANGE)
    main_shot = rng.random(n_shots) < main_fraction
    if n_shots and not main_shot.any():
        main_shot[rng.integers(n_shots)] = True
    main = main_shot[shot_of_frame]

    # Scenes: 0 = main (first half), 1 = main (second half), 2 + s = distractor of shot s.
    rgb_main = world.rgb_prototypes[plain].sum(0) if plain else np.zeros(world.rgb_size, np.float32)
    n_rgb = sum(1 for c in plain if c not in world.audio_only_classes)
    first = second = rgb_main
    if order_labels:
        pair, direction = order_labels[0]
        scene_a, scene_b = world.order_scenes[pair]
        if direction == 1:
            scene_a, scene_b = scene_b, scene_a
        first, second, n_rgb = rgb_main + scene_a, rgb_main + scene_b, n_rgb + 1
    if n_rgb == 0:  # nothing visible (only audio-only labels): the main scene is an unrelated filler scene
        first = second = world.filler_rgb[rng.integers(NUM_FILLER_SCENES)]
    norm = 1.0 / np.sqrt(max(n_rgb, 1))
    shown = [c for c in labels.tolist() if c not in local]
    audio_main = world.audio_prototypes[shown].sum(0) / np.sqrt(max(len(shown), 1))

    filler = rng.random(n_shots) < FILLER_DISTRACTOR_PROB
    filler_index = rng.integers(NUM_FILLER_SCENES, size=n_shots)
    class_index = rng.integers(world.num_classes, size=n_shots)
    rgb_scenes = np.where(filler[:, None], world.filler_rgb[filler_index], world.rgb_prototypes[class_index])
    audio_scenes = np.where(filler[:, None], world.filler_audio[filler_index], world.audio_prototypes[class_index])
    rgb_scenes = np.concatenate([np.stack([first * norm, second * norm]), rgb_scenes])
    audio_scenes = np.concatenate([np.stack([audio_main, audio_main]), audio_scenes])

    main_rank = np.cumsum(main) - 1
    scene = np.where(main, (main_rank >= main.sum() / 2.0).astype(np.int64), 2 + shot_of_frame)
    rgb_base = (world.rgb_mean + rng.standard_normal(world.rgb_size, np.float32) * (RGB_VIDEO_OFFSET * world.rgb_scale)
                + rng.standard_normal((num_frames, world.rgb_size), np.float32) * (RGB_NOISE * world.rgb_scale))
    audio_base = (world.audio_mean
                  + rng.standard_normal(world.audio_size, np.float32) * (AUDIO_VIDEO_OFFSET * world.audio_scale)
                  + rng.standard_normal((num_frames, world.audio_size), np.float32)
                  * (AUDIO_NOISE * world.audio_scale))
    rgb, audio = rgb_scenes[scene] + rgb_base, audio_scenes[scene] + audio_base
    visible = {}
    for c in local:  # each local class alone in its windows
        mask = np.zeros(num_frames, bool)
        for _ in range(int(rng.integers(1, 3))):
            width = int(rng.integers(LOCAL_WINDOW_RANGE[0], LOCAL_WINDOW_RANGE[1] + 1))
            start = int(rng.integers(0, max(num_frames - width, 0) + 1))
            mask[start:start + width] = True
        rgb[mask] = world.rgb_prototypes[c] + rgb_base[mask]
        audio[mask] = world.audio_prototypes[c] + audio_base[mask]
        main = main & ~mask
        for other in visible:  # a later window shows only its own class
            visible[other] = visible[other] & ~mask
        visible[c] = mask
    return {"labels": labels, "rgb": quantize(rgb.reshape(num_frames, world.rgb_size)),
            "audio": quantize(audio.reshape(num_frames, world.audio_size)), "main": main, "visible": visible}


def _rate_segments(video, rng):
    """Ratings of the video's local classes: up to MAX_RATED_SEGMENTS of its 5-frame segments per class, those
    showing the class (score 1: at least 3 of the 5 frames in one of its windows) first, up to 3 of them, the
    rest drawn from the others (score 0)."""
    num_segments = len(video["main"]) // SEGMENT_FRAMES
    seg_labels, starts, scores = [], [], []
    for c, mask in sorted(video["visible"].items()):
        if not num_segments:
            break
        shown = mask[:num_segments * SEGMENT_FRAMES].reshape(num_segments, -1).sum(1) * 2 > SEGMENT_FRAMES
        positive, negative = np.flatnonzero(shown), np.flatnonzero(~shown)
        take = min(len(positive), 3)
        chosen = rng.choice(positive, size=take, replace=False).tolist() + rng.choice(
            negative, size=min(len(negative), MAX_RATED_SEGMENTS - take), replace=False).tolist()
        chosen = np.sort(np.asarray(chosen, np.int64))
        seg_labels.extend([c] * len(chosen))
        starts.extend((chosen * SEGMENT_FRAMES).tolist())
        scores.extend(shown[chosen].astype(np.float32).tolist())
    return {"labels": seg_labels, "start_times": starts, "scores": scores}


def _video_ids(rng, count, id_key):
    alphabet = np.array(list(_ID_ALPHABETS[id_key]))
    length = _ID_LENGTHS[id_key]
    ids, seen = [], set()
    while len(ids) < count:
        draws = rng.integers(len(alphabet), size=(count - len(ids), length))
        for row in alphabet[draws]:
            name = "".join(row)
            if name not in seen:
                seen.add(name)
                ids.append(name)
    return ids


def shard_names(prefix, num_shards):
    """The file names ``write_dataset`` uses: ``f"{prefix}{i:04d}.tfrecord"``."""
    return [f"{prefix}{i:04d}.tfrecord" for i in range(num_shards)]


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def write_dataset(output_dir, level="frame", release="2018", num_shards=2, videos_per_shard=64, min_frames=20,
                  max_frames=60, num_classes=None, seed=0, prefix="train", segments=False, with_labels=True,
                  rgb_size=1024, audio_size=128, zero_frame_videos=0, segment_classes=None, world_seed=0):
    """Writes ``num_shards`` official-layout TFRecord shards and returns their paths.

    ``level`` "frame" (SequenceExample) or "video" (Example, means of the same frames); ``release`` "2018" (key
    ``id``, 3862 classes) or "2017" (key ``video_id``, 4716 classes); frame counts are uniform in
    [min_frames, max_frames] except ``zero_frame_videos`` videos with none. ``segments`` adds the 2019 segment
    ratings (frame level only) for classes in ``segment_classes`` (default: ``make_world(...).segment_classes``).
    Deterministic for (seed, prefix, world_seed, arguments).
    """
    if level not in ("frame", "video"):
        raise ValueError(f"level must be 'frame' or 'video', got {level!r}")
    release = str(release)
    if release not in DEFAULT_NUM_CLASSES:
        raise ValueError(f"release must be '2018' or '2017', got {release!r}")
    num_shards = _check_int("num_shards", num_shards, 1)
    videos_per_shard = _check_int("videos_per_shard", videos_per_shard, 1)
    min_frames = _check_int("min_frames", min_frames, 0)
    max_frames = _check_int("max_frames", max_frames, 0)
    if max_frames < min_frames:
        raise ValueError(f"max_frames ({max_frames}) must be >= min_frames ({min_frames})")
    num_classes = DEFAULT_NUM_CLASSES[release] if num_classes is None else _check_int("num_classes", num_classes, 1)
    rgb_size = _check_int("rgb_size", rgb_size, 1)
    audio_size = _check_int("audio_size", audio_size, 1)
    seed = _check_int("seed", seed, 0)
    total = num_shards * videos_per_shard
    zero_frame_videos = _check_int("zero_frame_videos", zero_frame_videos, 0)
    if zero_frame_videos > total:
        raise ValueError(f"zero_frame_videos ({zero_frame_videos}) exceeds the number of videos ({total})")
    if segments and level != "frame":
        raise ValueError("segments are only written in frame-level files")
    if not prefix or os.sep in prefix or (os.altsep and os.altsep in prefix):
        raise ValueError(f"prefix must be a non-empty file-name prefix, got {prefix!r}")

    world = make_world(num_classes, rgb_size, audio_size, world_seed)
    if segment_classes is None:
        candidates = frozenset(world.segment_classes)
    else:
        candidates = frozenset(int(c) for c in segment_classes)
        if any(c < 0 or c >= num_classes for c in candidates):
            raise ValueError(f"segment_classes must lie in [0, {num_classes})")
    id_key = ID_KEYS[release]
    stream = [seed, zlib.crc32(prefix.encode("utf-8"))]
    dataset_rng = np.random.default_rng(stream)
    ids = _video_ids(dataset_rng, total, id_key)
    empty = set(dataset_rng.choice(total, size=zero_frame_videos, replace=False).tolist())

    import tensorflow as tf  # lazily: only the TFRecord framing (crc32c) needs it

    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for shard, name in enumerate(shard_names(prefix, num_shards)):
        path = os.path.join(output_dir, name)
        tmp = os.path.join(output_dir, f".{name}.tmp{os.getpid()}")
        try:
            with tf.io.TFRecordWriter(tmp) as writer:
                for index in range(shard * videos_per_shard, (shard + 1) * videos_per_shard):
                    rng = np.random.default_rng(stream + [index])
                    video = sample_video(world, rng, int(rng.integers(min_frames, max_frames + 1)),
                                         candidates if segments else None)
                    if index in empty:
                        video = {**video, "rgb": video["rgb"][:0], "audio": video["audio"][:0],
                                 "main": video["main"][:0], "visible": {}}
                    labels = video["labels"] if with_labels else None
                    if level == "frame":
                        rated = None
                        if segments:
                            rated = _rate_segments(video, np.random.default_rng(stream + [index, 1]))
                        record = frame_example(ids[index], labels, video["rgb"], video["audio"], id_key, rated)
                    else:
                        record = video_example(ids[index], labels, _video_mean(video["rgb"]),
                                               _video_mean(video["audio"]), id_key)
                    writer.write(record)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        paths.append(path)
    return paths


def _video_mean(codes):
    if len(codes) == 0:
        return np.zeros(codes.shape[1], np.float32)
    return dequantize(codes).mean(axis=0, dtype=np.float64).astype(np.float32)


def _positive(text):
    return _at_least(text, 1)


def _non_negative(text):
    return _at_least(text, 0)


def _at_least(text, minimum):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def main(argv=None):
    from yt8m_tf import cli  # noqa: F401  quiets TensorFlow's start-up lines before write_dataset imports it

    parser = argparse.ArgumentParser(
        prog="yt8m-synthetic",
        description="Write synthetic YouTube-8M TFRecords in the official layout (see yt8m_tf/synthetic.py).")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--level", choices=("frame", "video"), default="frame")
    parser.add_argument("--release", choices=("2018", "2017"), default="2018")
    parser.add_argument("--num_shards", type=_positive, default=2)
    parser.add_argument("--videos_per_shard", type=_positive, default=64)
    parser.add_argument("--min_frames", type=_non_negative, default=20)
    parser.add_argument("--max_frames", type=_non_negative, default=60)
    parser.add_argument("--num_classes", type=_positive, default=None,
                        help="default: 3862 (2018) or 4716 (2017)")
    parser.add_argument("--seed", type=_non_negative, default=0)
    parser.add_argument("--world_seed", type=_non_negative, default=0)
    parser.add_argument("--prefix", default="train")
    parser.add_argument("--segments", action="store_true", help="add 2019 segment ratings (frame level)")
    parser.add_argument("--no_labels", action="store_true", help="write test files without a labels key")
    parser.add_argument("--rgb_size", type=_positive, default=1024)
    parser.add_argument("--audio_size", type=_positive, default=128)
    parser.add_argument("--zero_frame_videos", type=_non_negative, default=0)
    args = parser.parse_args(argv)
    try:
        paths = write_dataset(
            args.output_dir, level=args.level, release=args.release, num_shards=args.num_shards,
            videos_per_shard=args.videos_per_shard, min_frames=args.min_frames, max_frames=args.max_frames,
            num_classes=args.num_classes, seed=args.seed, prefix=args.prefix, segments=args.segments,
            with_labels=not args.no_labels, rgb_size=args.rgb_size, audio_size=args.audio_size,
            zero_frame_videos=args.zero_frame_videos, world_seed=args.world_seed)
    except ValueError as error:
        parser.error(str(error))
    num_classes = args.num_classes or DEFAULT_NUM_CLASSES[args.release]
    print(f"wrote {args.num_shards * args.videos_per_shard} {args.level}-level videos ({args.release} layout, "
          f"{num_classes} classes{', segments' if args.segments else ''}{', no labels' if args.no_labels else ''}) "
          f"to {len(paths)} shard{'s' if len(paths) > 1 else ''}: {paths[0]}"
          f"{' .. ' + os.path.basename(paths[-1]) if len(paths) > 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
