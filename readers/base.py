"""What both readers share: settings, the batched pipeline, video ids, labels and the up-front layout check."""

import tensorflow as tf

from readers import files as files_lib
from readers.files import ReaderError

CLASSES_2017 = 4716


def split_features(feature_names, feature_sizes):
    """'rgb,audio' + '1024,128' (strings or lists) -> (['rgb', 'audio'], [1024, 128]), validated."""
    names = [n.strip() for n in feature_names.split(",")] if isinstance(feature_names, str) else list(feature_names)
    if isinstance(feature_sizes, str):
        try:
            sizes = [int(s) for s in feature_sizes.split(",")]
        except ValueError:
            raise ReaderError(f"--feature_sizes '{feature_sizes}' must be comma-separated integers") from None
    else:
        sizes = [int(s) for s in feature_sizes]
    if len(names) != len(sizes) or not names or not all(names):
        raise ReaderError(f"--feature_names {names} and --feature_sizes {sizes} must list the same number of features")
    if any(s <= 0 for s in sizes):
        raise ReaderError(f"--feature_sizes {sizes} must be positive")
    return names, sizes


def has_labels(data_pattern):
    """Whether the first record of the first matching file has a `labels` key (test files have none)."""
    record = files_lib.first_record(files_lib.list_files(data_pattern)[0])
    return "labels" in tf.train.SequenceExample.FromString(record).context.feature


class BaseReader:
    """Shared pipeline: files -> (filename, record) stream -> batch -> parse whole batches -> prefetch.

    Subclasses define `_context_features`, `_check_first_record` and `_parse_batch`.
    """

    level = ""

    def __init__(self, feature_names, feature_sizes, num_classes=3862):
        self.feature_names, self.feature_sizes = split_features(feature_names, feature_sizes)
        if int(num_classes) <= 0:
            raise ReaderError(f"--num_classes must be positive, got {num_classes}")
        self.num_classes = int(num_classes)

    @property
    def feature_dim(self):
        return sum(self.feature_sizes)

    def dataset(self, data_pattern, batch_size, shuffle=False, num_epochs=1, num_readers=8, drop_remainder=False,
                shuffle_buffer=1024, seed=None, shard=(0, 1), skip_corrupt=None, deterministic=None, cache_dir=None):
        """A tf.data.Dataset of batch dicts (see the module docstring of `readers`).

        Args:
          data_pattern: comma-separated glob patterns, local or gs://.
          batch_size: videos per batch (the last partial batch is kept unless drop_remainder, which also gives
            every tensor a static batch dimension).
          shuffle: shuffle files and records (training); False gives sorted file order then record order.
          num_epochs: passes over the data; None repeats forever.
          shard: (index, count) file-level sharding for multi-worker input.
          skip_corrupt: a `readers.CorruptRecordCounter` to skip and count corrupt records (opt-in).
          cache_dir: a local directory for the parsed-video cache (frame level, see `readers.cache`): the files
            are parsed once and every later pass reads the cache; the batches are the same.
        """
        if int(batch_size) <= 0:
            raise ReaderError(f"--batch_size must be positive, got {batch_size}")
        batch_size = int(batch_size)
        files = files_lib.shard_files(files_lib.list_files(data_pattern), shard[0], shard[1], data_pattern)
        self._check_first_record(files[0])
        order = dict(shuffle=shuffle, num_epochs=num_epochs, num_readers=num_readers, seed=seed)
        if cache_dir:
            elements = self._cached_videos(files, cache_dir, skip_corrupt, order)
        else:
            elements = files_lib.record_dataset(files, skip_corrupt=skip_corrupt, **order)
        if shuffle:
            elements = elements.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if cache_dir:
            batches = self._batch_videos(elements, batch_size, drop_remainder)
        else:
            batches = self._transform(elements.batch(batch_size, drop_remainder=drop_remainder), batch_size,
                                      drop_remainder, shuffle_buffer if shuffle else 0, seed)
        if drop_remainder:
            batches = batches.map(lambda batch: {key: tf.ensure_shape(value, [batch_size] + value.shape[1:])
                                                 for key, value in batch.items()})
        options = tf.data.Options()
        options.deterministic = (not shuffle) if deterministic is None else deterministic
        return batches.with_options(options).prefetch(tf.data.AUTOTUNE)

    def _transform(self, batches, batch_size, drop_remainder, shuffle_buffer, seed):
        return batches.map(self._parse_batch, num_parallel_calls=tf.data.AUTOTUNE)

    def _cached_videos(self, files, cache_dir, skip_corrupt, order):
        raise ReaderError(f"--input_cache_dir caches parsed frame-level videos; {self.level}-level records are "
                          "cheap to parse and are read directly")

    def parse_records(self, records):
        """A 1-D tensor of serialized records -> the batch dict (for serving signatures; no file names)."""
        return self._parse_batch(tf.fill(tf.shape(records), "serving"), records)

    # --- pieces shared by the subclasses ---

    @staticmethod
    def _context_features():
        return {
            "id": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "video_id": tf.io.FixedLenFeature([], tf.string, default_value=""),
            "labels": tf.io.VarLenFeature(tf.int64),
        }

    @staticmethod
    def _video_ids(context):
        """2018+ files name the id `id`, 2017 files `video_id`: detected per record."""
        return tf.where(tf.strings.length(context["id"]) > 0, context["id"], context["video_id"])

    def _check_labels(self, sparse_labels, filenames):
        """(B, None) sparse label ids, unchanged once checked: an out-of-range id fails naming the file."""
        values = sparse_labels.values
        bad = tf.logical_or(values >= self.num_classes, values < 0)
        # Padded by one entry so the message can be built (not shown) when there is no label at all.
        first_bad = tf.argmax(tf.concat([tf.cast(bad, tf.int32), [0]], 0))
        bad_id = tf.gather(tf.concat([values, [0]], 0), first_bad)
        bad_row = tf.gather(tf.concat([sparse_labels.indices[:, 0], [0]], 0), first_bad)
        message = tf.strings.join([
            "label id ", tf.strings.as_string(bad_id), f" >= --num_classes {self.num_classes} in '",
            tf.gather(filenames, bad_row),
            f"'; 2017 (v1) data has {CLASSES_2017} classes: use --num_classes {CLASSES_2017}"])
        check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message])
        with tf.control_dependencies([check]):
            return tf.sparse.SparseTensor(tf.identity(sparse_labels.indices), tf.identity(values),
                                          sparse_labels.dense_shape)

    def _multi_hot(self, sparse_labels):
        """(B, None) sparse label ids (checked) -> float32 multi-hot (B, num_classes)."""
        return tf.cast(tf.sparse.to_indicator(sparse_labels, self.num_classes), tf.float32)

    def _check_first_record(self, path):
        """Parse one record of the first file in Python and raise a clear error for the common mistakes."""
        example = tf.train.SequenceExample.FromString(files_lib.first_record(path))
        context = example.context.feature
        sequence = example.feature_lists.feature_list
        if "id" not in context and "video_id" not in context:
            raise ReaderError(f"'{path}' has no 'id' or 'video_id' key; keys present: {sorted(context)}")
        self._check_layout(path, context, sequence)
