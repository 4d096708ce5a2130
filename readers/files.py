"""Input files: pattern expansion, up-front checks with clear errors, and the record stream.

The record stream yields ``(filename, serialized_record)`` pairs, so every later check can name the file it found a
problem in.
"""

import logging
import os
import struct

import tensorflow as tf


class ReaderError(ValueError):
    """Bad input data or reader settings; the message is one line naming the file or pattern."""


def list_files(data_pattern):
    """Comma-separated glob patterns (local or gs://) -> sorted, de-duplicated file list."""
    if not data_pattern or not str(data_pattern).strip():
        raise ReaderError("no data pattern given")
    files = []
    for pattern in str(data_pattern).split(","):
        pattern = pattern.strip()
        if not pattern:
            continue
        if tf.io.gfile.isdir(pattern):
            raise ReaderError(f"'{pattern}' is a directory; give a file pattern such as '{pattern.rstrip('/')}/*.tfrecord'")
        matches = [m for m in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(m)]
        if not matches:
            raise ReaderError(f"no files match the data pattern '{pattern}'")
        files.extend(matches)
    files = sorted(set(files))
    for path in files:
        if "://" not in path and tf.io.gfile.stat(path).length == 0:
            raise ReaderError(f"input file '{path}' is empty (0 bytes)")
    return files


def shard_files(files, index, count, data_pattern=""):
    """File-level sharding for multi-worker input: worker `index` of `count` reads files[index::count]."""
    if count <= 1:
        return files
    if len(files) < count:
        raise ReaderError(f"{len(files)} files match '{data_pattern}' but {count} input workers need at least one each")
    return files[index::count]


def first_record(path):
    """The first serialized record of a file (for up-front layout checks)."""
    try:
        for record in tf.data.TFRecordDataset(path).take(1):
            return record.numpy()
    except tf.errors.DataLossError as e:
        raise ReaderError(f"'{path}' is not a readable TFRecord file ({e.message.split('[')[0].strip()})") from None
    raise ReaderError(f"input file '{path}' holds no records")


def interleave_files(sources, count, read, shuffle=False, num_epochs=1, num_readers=8, seed=None):
    """The elements of every input file in the reading order of the training or evaluation input.

    `sources` holds one element per file (`count` of them, in sorted file order) and `read(source)` is the dataset of
    that file's elements. Without shuffling: sorted file order then element order. With it: the files are shuffled
    (again every epoch) and read by a parallel interleave, one element from each of `num_readers` files in turn.
    The order depends only on `count`, `seed` and each file's element count, so the record stream and the cached
    parsed videos of the same files come in the same order. Determinism follows `tf.data.Options.deterministic`.
    """
    if shuffle:
        sources = sources.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    sources = sources.repeat(num_epochs)  # num_epochs=None repeats forever
    return sources.interleave(
        read,
        cycle_length=max(1, num_readers if shuffle else min(num_readers, 2)),
        block_length=1 if shuffle else 1 << 30,
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def read_records(filename, skip_corrupt=None):
    """One file's serialized records; ``skip_corrupt`` is a `CorruptRecordCounter` to skip corrupt records."""
    if skip_corrupt is not None:
        return skip_corrupt.dataset(filename)
    return tf.data.TFRecordDataset(filename, buffer_size=8 << 20)


def record_dataset(files, shuffle=False, num_epochs=1, num_readers=8, seed=None, skip_corrupt=None):
    """(filename, record) pairs in the order of `interleave_files`. ``skip_corrupt`` is a `CorruptRecordCounter`
    to skip corrupt records (opt-in)."""

    def read(filename):
        return read_records(filename, skip_corrupt).map(lambda record: (filename, record))

    return interleave_files(tf.data.Dataset.from_tensor_slices(files), len(files), read, shuffle=shuffle,
                            num_epochs=num_epochs, num_readers=num_readers, seed=seed)


def _masked_crc(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class CorruptRecordCounter:
    """Opt-in salvage reading: skips exactly the corrupt records of a file and counts them.

    TensorFlow's TFRecordDataset stops at the first corrupt record of a file. This reader walks the TFRecord
    framing (8-byte length + masked CRC32C of the length, data, CRC of the data) itself: a record whose data CRC
    fails is skipped and reading resumes at the next record; a bad length header or a truncated tail ends the file.
    ``skipped`` counts skipped records per file (an unreadable tail counts as one); ``truncated`` lists the files
    whose tail could not be read. Slower than the default path (Python per record): use it to get through damaged
    data, not by default.
    """

    def __init__(self):
        self.skipped = {}
        self.truncated = []

    @property
    def total(self):
        return sum(self.skipped.values())

    def summary(self):
        if not self.skipped:
            return "no corrupt records found"
        return f"skipped {self.total} corrupt record(s) in {len(self.skipped)} file(s): " + ", ".join(
            f"{path} ({n}{', unreadable tail' if path in self.truncated else ''})" for path, n in self.skipped.items())

    def _records(self, path):
        from tensorflow.python.lib.io import tf_record  # the C++ random-access reader (checks CRCs)

        path = path.decode() if isinstance(path, bytes) else path
        reader = tf_record.tf_record_random_reader(path)
        size = tf.io.gfile.stat(path).length
        offset = 0
        with tf.io.gfile.GFile(path, "rb") as raw:
            while offset < size:
                try:
                    record, offset = reader.read(offset)
                    yield record
                    continue
                except (tf.errors.DataLossError, IndexError):  # IndexError: the file ends inside a header
                    pass
                raw.seek(offset)
                header = raw.read(12)
                length = struct.unpack("<Q", header[:8])[0] if len(header) == 12 else 0
                if len(header) < 12 or _masked_crc(header[:8]) != struct.unpack("<I", header[8:])[0] \
                        or offset + 16 + length > size:
                    logging.warning("unreadable tail from byte %d in '%s' (truncated or corrupt header): skipped",
                                    offset, path)
                    self.skipped[path] = self.skipped.get(path, 0) + 1
                    self.truncated.append(path)
                    return
                logging.warning("corrupt record (CRC mismatch) at byte %d in '%s': skipped", offset, path)
                self.skipped[path] = self.skipped.get(path, 0) + 1
                offset += 16 + length

    def dataset(self, filename):
        return tf.data.Dataset.from_generator(
            self._records, args=(filename,), output_signature=tf.TensorSpec([], tf.string))


def _framing_end(path):
    """Walks a local file's TFRecord framing (length headers only, no data read): (complete records, byte offset
    where the last complete record ends)."""
    size = os.path.getsize(path)
    offset = records = 0
    with open(path, "rb", buffering=0) as f:
        while size - offset >= 16:
            f.seek(offset)
            header = f.read(8)
            if len(header) < 8:
                break
            end = offset + 16 + struct.unpack("<Q", header)[0]
            if end > size:
                break
            offset, records = end, records + 1
    return records, offset


_CHECKED = {}


def check_truncation(files, max_bytes=4 << 30):
    """Raises ReaderError for a local file whose end is not the end of a whole record.

    TensorFlow's TFRecordDataset reports a file cut inside a record's data as DataLossError, but treats a file cut
    inside a record's 12-byte header (length + its CRC) as a clean end of file: the partial record is lost silently.
    This walks the framing of local files (the length headers only: fast) and compares its end with the file size,
    so both kinds of cut are reported before any work is spent. Remote (gs://) files and local data larger than
    `max_bytes` in all are not walked (their cuts inside data still fail when read). Results are cached per
    (path, size, mtime). With --skip_corrupt_records this check is not run: the salvage reader counts the tail.
    """
    local = [f for f in files if "://" not in f]
    if len(local) != len(files) or sum(os.path.getsize(f) for f in local) > max_bytes:
        return
    for path in local:
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in _CHECKED:
            _CHECKED[key] = _framing_end(path)
        records, end = _CHECKED[key]
        if end != stat.st_size:
            raise ReaderError(
                f"TFRecord file '{path}' is truncated or corrupt: {stat.st_size - end} byte(s) after its "
                f"{records} complete record(s) (from byte {end}) are not a whole record; fix or remove it, "
                "or pass --skip_corrupt_records to skip its unreadable tail")


def describe_data_loss(error, files):
    """A one-line message for a DataLossError from the record stream, naming the damaged file when it can be found
    quickly (local files up to 4 GiB in all are checked; others are named by pattern)."""
    detail = error.message.split("[")[0].strip() if hasattr(error, "message") else str(error)
    local = [f for f in files if "://" not in f]
    if local and len(local) == len(files) and sum(tf.io.gfile.stat(f).length for f in local) <= 4 << 30:
        for path in local:
            try:
                for _ in tf.data.TFRecordDataset(path, buffer_size=8 << 20):
                    pass
            except tf.errors.DataLossError as e:
                detail = e.message.split("[")[0].strip()
                return (f"corrupt or truncated TFRecord file '{path}' ({detail}); fix or remove it, "
                        "or pass --skip_corrupt_records to skip corrupt records")
    return (f"corrupt or truncated TFRecord data in one of {len(files)} input files ({detail}); "
            "pass --skip_corrupt_records to skip corrupt records")


def describe_error(error, files=()):
    """The one-line message for an error raised while iterating a reader's dataset."""
    if isinstance(error, tf.errors.DataLossError):
        return describe_data_loss(error, list(files))
    text = getattr(error, "message", None) or str(error)
    if "assertion failed: [" in text:
        message = text.split("assertion failed: [", 1)[1].split("]\n", 1)[0].split("]\t", 1)[0].rstrip("]")
        return message.replace("\\'", "'")
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def count_records(files, max_bytes=2 << 30):
    """Number of records in local files totalling at most `max_bytes` (a fast C++ pass); None when larger or remote
    (then epochs end when the data does)."""
    if any("://" in f for f in files) or sum(tf.io.gfile.stat(f).length for f in files) > max_bytes:
        return None
    return int(tf.data.TFRecordDataset(files, num_parallel_reads=4).reduce(tf.constant(0, tf.int64),
                                                                            lambda n, _: n + 1))
