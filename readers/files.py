"""Input files: pattern expansion, up-front checks with clear errors, and the record stream.

The record stream yields ``(filename, serialized_record)`` pairs, so every later check can name the file it found a
problem in.
"""

import logging
import os
import re
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
        raise ReaderError(f"'{path}' is not a readable TFRecord file ({_tf_detail(e)})") from None
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
    ``skipped`` counts the skipped records per file (an unreadable tail counts as one); ``truncated`` lists the files
    whose tail could not be read. A record is counted (and logged) once however often it is read again (epochs). Slower than the default path (Python per record): use it to get through damaged
    data, not by default.
    """

    def __init__(self):
        self._damaged = {}  # path -> {byte offset of a skipped record or tail: True when it is an unreadable tail}

    @property
    def skipped(self):
        return {path: len(offsets) for path, offsets in self._damaged.items()}

    @property
    def truncated(self):
        return [path for path, offsets in self._damaged.items() if any(offsets.values())]

    @property
    def total(self):
        return sum(self.skipped.values())

    def summary(self):
        if not self._damaged:
            return "no corrupt records found"
        truncated = self.truncated
        return f"skipped {self.total} corrupt record(s) in {len(self._damaged)} file(s): " + ", ".join(
            f"{path} ({n}{', unreadable tail' if path in truncated else ''})" for path, n in self.skipped.items())

    def _count(self, path, offset, tail):
        offsets = self._damaged.setdefault(path, {})
        if offset not in offsets:
            offsets[offset] = tail
            if tail:
                logging.warning("unreadable tail from byte %d in '%s' (truncated or corrupt header): skipped",
                                offset, path)
            else:
                logging.warning("corrupt record (CRC mismatch) at byte %d in '%s': skipped", offset, path)

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
                tail = len(header) < 12 or _masked_crc(header[:8]) != struct.unpack("<I", header[8:])[0] \
                    or offset + 16 + length > size
                self._count(path, offset, tail)
                if tail:
                    return
                offset += 16 + length

    def dataset(self, filename):
        return tf.data.Dataset.from_generator(
            self._records, args=(filename,), output_signature=tf.TensorSpec([], tf.string))


def _walk(path, check_crc=False, stop=None):
    """Walks a local file's TFRecord framing, reading the 12-byte headers only (length and its masked CRC32C; with
    `check_crc` the CRC is checked too), up to the end or (`stop`) the record whose header or data holds byte
    `stop`: (complete records before it, its byte offset, why the walk stopped short of the file's end or None)."""
    size = os.path.getsize(path)
    offset = records = 0
    with open(path, "rb", buffering=0) as f:
        while offset < size and (stop is None or offset + 12 < stop):
            f.seek(offset)
            header = f.read(12)
            if len(header) < 12:
                return records, offset, f"cut inside the header of record {records}"
            if check_crc and _masked_crc(header[:8]) != struct.unpack("<I", header[8:])[0]:
                return records, offset, f"the length field of record {records} fails its checksum"
            end = offset + 16 + struct.unpack("<Q", header[:8])[0]
            if end > size:
                return records, offset, f"cut inside record {records}: {end - size} byte(s) of it are missing"
            offset, records = end, records + 1
    return records, offset, None


_CHECKED = {}


def check_truncation(files, max_bytes=4 << 30):
    """Raises ReaderError for a local file whose end is not the end of a whole record.

    TensorFlow's TFRecordDataset reports a file cut inside a record's data as DataLossError, but treats a file cut
    inside a record's 12-byte header (length + its CRC) as a clean end of file: the partial record is lost silently.
    This walks the framing of local files (the length headers only: fast) and compares its end with the file size,
    so both kinds of cut, and a damaged length field, are reported before any work is spent (a second walk, checking
    the headers' CRCs, says which). Remote (gs://) files and local data larger than `max_bytes` in all are not walked
    (their cuts inside data still fail when read). Results are cached per (path, size, mtime). With
    --skip_corrupt_records this check is not run: the salvage reader counts the tail.
    """
    local = [f for f in files if "://" not in f]
    if len(local) != len(files) or sum(os.path.getsize(f) for f in local) > max_bytes:
        return
    for path in local:
        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in _CHECKED:
            _CHECKED[key] = _walk(path)[:2]
        records, end = _CHECKED[key]
        if end != stat.st_size:
            records, end, problem = _walk(path, check_crc=True)
            raise ReaderError(
                f"TFRecord file '{path}' is truncated or corrupt: {stat.st_size - end} byte(s) after its "
                f"{records} complete record(s) (from byte {end}) are not a whole record ({problem}); fix or remove "
                "it, or pass --skip_corrupt_records to skip its unreadable tail")


def _tf_detail(error):
    """TensorFlow's message of an error, one line, without its internals ({{function_node ...}}, [Op:...], [[...]])."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", getattr(error, "message", None) or str(error))
    line = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return re.split(r"\s*\[\[|\s*\[Op:", line)[0].strip()


def _damaged_record(path, detail):
    """Which record of `path` TensorFlow's "corrupted / truncated record at <byte>" names, in words (None when the
    message names no byte). TensorFlow gives a record's start for its header and the start + 12 for its data."""
    found = re.search(r"(corrupted|truncated) record at (\d+)", detail)
    if not found:
        return None
    kind, at = found.group(1), int(found.group(2))
    index, offset, _ = _walk(path, stop=at)
    if kind == "truncated":
        return f"cut inside record {index} (from byte {offset})"
    if at == offset + 12:
        return f"record {index} (from byte {offset}) fails its checksum: its data is damaged"
    return f"the length field of record {index} (at byte {offset}) fails its checksum"


def describe_data_loss(error, files):
    """A one-line message for a DataLossError from the record stream, naming the damaged file and record when they
    can be found quickly (local files up to 4 GiB in all are read again, one by one)."""
    detail = _tf_detail(error)
    local = [f for f in files if "://" not in f]
    if local and len(local) == len(files) and sum(tf.io.gfile.stat(f).length for f in local) <= 4 << 30:
        for path in local:
            try:
                for _ in tf.data.TFRecordDataset(path, buffer_size=8 << 20):
                    pass
            except tf.errors.DataLossError as e:
                detail = _tf_detail(e)
                return (f"corrupt or truncated TFRecord file '{path}': {_damaged_record(path, detail) or detail}; "
                        "fix or remove it, or pass --skip_corrupt_records to skip corrupt records")
    where = f" in one of {len(files)} input files" if files else ""
    return f"corrupt or truncated TFRecord data{where} ({detail}); pass --skip_corrupt_records to skip corrupt records"


def describe_error(error, files=()):
    """The one-line message for an error raised while iterating a reader's dataset."""
    if isinstance(error, tf.errors.DataLossError):
        return describe_data_loss(error, list(files))
    text = getattr(error, "message", None) or str(error)
    if "assertion failed: [" in text:
        message = text.split("assertion failed: [", 1)[1].split("]\n", 1)[0].split("]\t", 1)[0].rstrip("]")
        return message.replace("\\'", "'")
    return _tf_detail(error)


def count_records(files, max_bytes=2 << 30):
    """Number of records in local files totalling at most `max_bytes` (a fast C++ pass); None when larger, remote or
    damaged (then epochs end when the data does; reading a damaged file fails naming it, or skips its corrupt
    records with --skip_corrupt_records)."""
    if any("://" in f for f in files) or sum(tf.io.gfile.stat(f).length for f in files) > max_bytes:
        return None
    try:
        return int(tf.data.TFRecordDataset(files, num_parallel_reads=4).reduce(tf.constant(0, tf.int64),
                                                                                lambda n, _: n + 1))
    except tf.errors.DataLossError:
        return None
