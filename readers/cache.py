"""The parsed-video cache (`dataset(cache_dir=...)`, train.py --input_cache_dir).

Parsing official frame-level records costs several times the read of their bytes (one string per frame and
feature), and training reads every file once per epoch. With a cache directory each input file is parsed once into
its videos (id, the uint8 codes of the used frames, num_frames, label ids: about the size of the TFRecord file) and
saved with tf.data's own `Dataset.save`; every pass then reads them back with `Dataset.load` instead of parsing.

* One cache entry per input file, named `<file name>.<key>`: the key hashes the file's path, size and modification
  time, the reader settings that shape the parsed videos and the TensorFlow version, so a changed file, other
  settings or another TensorFlow never read an old entry (they build their own; old entries stay until the
  directory is deleted).
* An entry is written to a temporary name, completed with `cache.json` (the key's contents) and renamed into place:
  a run killed mid-write leaves only the temporary directory, which is never read (delete `*.partial-*` to reclaim
  its space). An entry whose `cache.json` is missing or does not match is rebuilt.
* Per-file entries keep each file's records in order, so the reader's file shuffle and interleave yield the
  videos in exactly the order of the uncached input (`readers.files.interleave_files`), for any sharding.

Cost (BENCHMARKS.md): a pass over the cache takes about 2x the CPU of a raw read of the TFRecords, against 3.5-4x
for parsing them. Building the entries costs about 1.5 uncached passes (about 1,000 CPU-us per video on shards of
official size, ~1,500 videos, including ~0.25 CPU-s per file), so the cache pays for itself within three epochs.
"""

import hashlib
import json
import os
import shutil
import uuid

import tensorflow as tf

from readers.files import ReaderError

VERSION = 1  # of the cached element layout
MARKER = "cache.json"


def entry_name(path, settings):
    """The entry of one input file: `<file name>.<key>` and the key's contents (for the marker)."""
    stat = tf.io.gfile.stat(path)
    key = {"file": path if "://" in path else os.path.abspath(path), "bytes": stat.length,
           "mtime_ns": stat.mtime_nsec, "settings": settings, "version": VERSION, "tensorflow": tf.__version__}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return f"{os.path.basename(path)}.{digest}", key


def is_complete(entry, key):
    try:
        with open(os.path.join(entry, MARKER)) as f:
            return json.load(f)["key"] == key
    except (OSError, ValueError, KeyError):
        return False


def check_cache_dir(cache_dir, missing_bytes):
    """A local, writable directory with room for the entries to build (about their TFRecord size)."""
    if "://" in cache_dir:
        raise ReaderError(f"--input_cache_dir '{cache_dir}' must be a local directory (entries are renamed into "
                          "place, which remote file systems do not do atomically)")
    try:
        os.makedirs(cache_dir, exist_ok=True)
        free = shutil.disk_usage(cache_dir).free
    except OSError as e:
        raise ReaderError(f"--input_cache_dir '{cache_dir}' cannot be used ({e.strerror or e})") from None
    if not os.access(cache_dir, os.W_OK):
        raise ReaderError(f"--input_cache_dir '{cache_dir}' is not writable")
    if missing_bytes > free:
        raise ReaderError(f"--input_cache_dir '{cache_dir}' has {free / 2**30:.1f} GiB free but the cache of the "
                          f"input needs about {missing_bytes / 2**30:.1f} GiB (the size of its TFRecord files)")


def build(entry, key, videos):
    """Saves `videos` (one input file's parsed videos, in record order) as the complete entry `entry`."""
    partial = f"{entry}.partial-{uuid.uuid4().hex[:12]}"
    try:
        videos.save(os.path.join(partial, "videos"), shard_func=lambda *_: tf.constant(0, tf.int64))
        with open(os.path.join(partial, MARKER), "w") as f:
            json.dump({"key": key}, f, indent=1)
        if is_complete(entry, key):  # another process completed the same entry meanwhile
            return
        if os.path.isdir(entry):  # without (or with another) completion marker: never read
            shutil.rmtree(entry)
        os.rename(partial, entry)
    except OSError as e:
        if not is_complete(entry, key):  # else another process renamed its copy into place first
            raise ReaderError(f"cannot write the input cache entry '{entry}' ({e.strerror or e})") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def load(entries, element_spec):
    """A dataset with one element per entry: the dataset of its videos (for `readers.files.interleave_files`)."""
    in_order = tf.function(lambda shards: shards.flat_map(lambda shard: shard))  # traced once for all entries
    per_file = [tf.data.Dataset.load(os.path.join(entry, "videos"), element_spec=element_spec, reader_func=in_order)
                for entry in entries]
    return tf.data.Dataset.choose_from_datasets([tf.data.Dataset.from_tensors(d) for d in per_file],
                                                tf.data.Dataset.range(len(per_file)))
