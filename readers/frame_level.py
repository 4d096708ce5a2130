"""Frame-level reader: one tf.train.SequenceExample per video; context `id`/`video_id` and `labels`, feature lists
`rgb` and `audio` holding one bytes value per frame (1024 / 128 uint8 codes, 1 frame per second)."""

import concurrent.futures
import os

import tensorflow as tf

from readers import cache as cache_lib, files as files_lib
from readers.base import BaseReader
from readers.files import ReaderError, describe_error
from yt8m_tf.quantization import dequantize


class FrameLevelReader(BaseReader):
    """Reads official frame-level TFRecords into batch dicts.

    Output: `video_ids` tf.string (B,), `video_matrix` (B, max_frames, D) float32 dequantized (uint8 codes when
    `quantized=True`, for the model to dequantize on the accelerator: 4x less host-to-device traffic), frames past
    `num_frames` zero; `num_frames` int32 (B,) = min(T, max_frames) (0 for a video without frames); `labels` float32
    multi-hot (B, num_classes), all zero for test files without labels.

    Segment mode (`segment_labels=True`, 2019 segment-rated files): one element per rated segment, as the 2019
    starter code does: `video_matrix` (B, segment_size, D) holding the segment's frames, `num_frames` (B,),
    `labels` the segment scores at the rated classes, `label_weights` 1 at the rated classes (only rated pairs are
    evaluated), plus `segment_start_times` (B,).
    """

    level = "frame"

    def __init__(self, feature_names="rgb,audio", feature_sizes="1024,128", num_classes=3862, max_frames=300,
                 segment_labels=False, segment_size=5, quantized=False):
        super().__init__(feature_names, feature_sizes, num_classes)
        if int(max_frames) <= 0:
            raise ReaderError(f"--max_frames must be positive, got {max_frames}")
        self.max_frames = int(max_frames)
        self.segment_labels = bool(segment_labels)
        self.segment_size = int(segment_size)
        self.quantized = bool(quantized)

    def _check_layout(self, path, context, sequence):
        for name, size in zip(self.feature_names, self.feature_sizes):
            if name not in sequence:
                hint = " (this is video-level data: drop --frame_features)" if not sequence and context else ""
                raise ReaderError(f"frame feature '{name}' not found in '{path}'{hint}; frame features present: "
                                  f"{sorted(sequence)}, context keys: {sorted(context)}")
            frames = sequence[name].feature
            if frames and len(frames[0].bytes_list.value[0]) != size:
                raise ReaderError(f"frame feature '{name}' in '{path}' has {len(frames[0].bytes_list.value[0])} "
                                  f"bytes per frame but --feature_sizes says {size}")
        if self.segment_labels and "segment_start_times" not in context:
            raise ReaderError(f"--segment_labels needs segment-rated (2019) files; '{path}' has no "
                              f"'segment_start_times' (context keys: {sorted(context)})")

    def _transform(self, batches, batch_size, drop_remainder, shuffle_buffer, seed):
        videos = batches.map(self._parse_batch, num_parallel_calls=tf.data.AUTOTUNE)
        if not self.segment_labels:
            return videos
        # Segments: the rated segments of the parsed videos, shuffled when training (a video's segments would
        # otherwise share batches), re-batched to the same batch size.
        segments = videos.unbatch().map(self._video_segments, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        if shuffle_buffer:
            segments = segments.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return segments.batch(batch_size, drop_remainder=drop_remainder)

    def _parse_batch(self, filenames, records):
        """Parses a batch of records into the batch dict: the used frames of `_parse_videos`, dequantized unless
        quantized, padded with zeros to max_frames by one `RaggedTensor.to_tensor`."""
        context, videos = self._parse_videos(filenames, records)
        frames = videos["frames"]
        video_matrix = frames.with_flat_values(self._values(frames.flat_values)).to_tensor(
            shape=[None, self.max_frames, self.feature_dim])
        batch = {
            "video_ids": videos["video_ids"],
            "video_matrix": video_matrix,
            "num_frames": videos["num_frames"],
            "labels": self._multi_hot(videos["labels"]),
        }
        if self.segment_labels:
            for key in ("segment_labels", "segment_start_times", "segment_scores"):
                batch[key] = context[key]
        return batch

    def _parse_videos(self, filenames, records):
        """Parses and checks a batch of records: (context, videos) with `videos` holding per video `video_ids`,
        `num_frames` int32 = min(T, max_frames), `labels` (sparse int64 ids, checked) and `frames`: the uint8 codes
        of the used frames (the first num_frames of every feature, features concatenated), ragged (B, None, D).

        Frames are parsed as ragged lists (no padding of the string tensor) and each feature's frames are decoded
        with one `decode_raw` over the flat list (every frame has the same size). In the official files every
        feature has the same frames and at most max_frames of them, so the flat codes are used as they are;
        otherwise (a cond branch) only the used frames of each feature are kept.
        """
        spec = self._context_features()
        if self.segment_labels:
            spec.update({"segment_labels": tf.io.RaggedFeature(tf.int64),
                         "segment_start_times": tf.io.RaggedFeature(tf.int64),
                         "segment_scores": tf.io.RaggedFeature(tf.float32)})
        sequence_spec = {name: tf.io.RaggedFeature(tf.string, row_splits_dtype=tf.int64)
                         for name in self.feature_names}
        context, sequence, _ = tf.io.parse_sequence_example(records, context_features=spec,
                                                             sequence_features=sequence_spec)
        frames = [sequence[name] for name in self.feature_names]
        num_frames = tf.reduce_min(tf.stack([f.row_lengths() for f in frames]), axis=0)
        num_frames = tf.minimum(num_frames, self.max_frames)
        padded_filenames = tf.concat([filenames, [""]], 0)
        used = [_frame_positions(f) < tf.gather(num_frames, f.value_rowids()) for f in frames]
        codes = [self._decode_frames(name, size, f, u, padded_filenames)
                 for name, size, f, u in zip(self.feature_names, self.feature_sizes, frames, used)]

        def concat(parts):
            return tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]

        all_used = tf.reduce_all([tf.reduce_all(u) for u in used])
        flat = tf.cond(all_used, lambda: concat(codes),
                       lambda: concat([tf.boolean_mask(c, u) for c, u in zip(codes, used)]))
        return context, {
            "video_ids": self._video_ids(context),
            "frames": tf.RaggedTensor.from_row_lengths(flat, num_frames, validate=False),
            "num_frames": tf.cast(num_frames, tf.int32),
            "labels": self._check_labels(context["labels"], filenames),
        }

    def _values(self, codes):
        return codes if self.quantized else dequantize(codes, tf)

    # --- the parsed-video cache (readers.cache) ---

    def _cached_videos(self, files, cache_dir, skip_corrupt, order):
        """The parsed videos of `files` from their cache entries (built first where missing), in input order."""
        if self.segment_labels:
            raise ReaderError("--input_cache_dir caches whole videos; segment mode (--segment_labels) reads the "
                              "files directly")
        settings = {"feature_names": self.feature_names, "feature_sizes": self.feature_sizes,
                    "max_frames": self.max_frames, "num_classes": self.num_classes,
                    "skip_corrupt_records": skip_corrupt is not None}
        names, keys = zip(*[cache_lib.entry_name(path, settings) for path in files])
        entries = [os.path.join(cache_dir, name) for name in names]
        missing = [i for i, entry in enumerate(entries) if not cache_lib.is_complete(entry, keys[i])]
        if missing:
            cache_lib.check_cache_dir(cache_dir, sum(keys[i]["bytes"] for i in missing))
            print(f"input cache: parsing {len(missing)} of {len(files)} files once into '{cache_dir}'", flush=True)
            self._build_entries([files[i] for i in missing], [entries[i] for i in missing],
                                [keys[i] for i in missing], skip_corrupt)
        return files_lib.interleave_files(cache_lib.load(entries, self._video_spec()), len(entries),
                                          lambda videos: videos, **order)

    def _build_entries(self, files, entries, keys, skip_corrupt):
        """Parses each file into its cache entry, up to 16 files at a time (each file also costs about 0.25 CPU-s
        of dataset construction and function instantiation, largely waiting); a bad record fails naming the file
        (and leaves no entry)."""
        parse = tf.function(self._chunk_videos, input_signature=[tf.TensorSpec([None], tf.string),
                                                                 tf.TensorSpec([], tf.string)])
        parse.get_concrete_function()  # traced once, for every file

        def build(path, entry, key):
            records = files_lib.read_records(path, skip_corrupt).batch(64)
            chunks = records.map(lambda chunk: parse(chunk, path), num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)
            videos = chunks.unbatch().map(lambda video: {k: tf.convert_to_tensor(v) for k, v in video.items()})
            try:
                cache_lib.build(entry, key, videos)
            except tf.errors.OpError as e:
                raise ReaderError(describe_error(e, [path])) from None

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 16))
        try:
            for job in [pool.submit(build, *job) for job in zip(files, entries, keys)]:
                job.result()
        finally:
            pool.shutdown(cancel_futures=True)

    def _video_spec(self):
        """One parsed video: the used frames' codes unpadded and the label ids."""
        return {"video_ids": tf.TensorSpec([], tf.string),
                "video_matrix": tf.TensorSpec([None, self.feature_dim], tf.uint8),
                "num_frames": tf.TensorSpec([], tf.int32),
                "labels": tf.TensorSpec([None], tf.int64)}

    def _chunk_videos(self, records, path):
        """Records of the file `path` -> `_video_spec` fields of each video (ragged, for `unbatch`)."""
        _, videos = self._parse_videos(tf.fill(tf.shape(records), path), records)
        return {"video_ids": videos["video_ids"], "video_matrix": videos["frames"],
                "num_frames": videos["num_frames"], "labels": tf.RaggedTensor.from_sparse(videos["labels"])}

    def _batch_videos(self, videos, batch_size, drop_remainder):
        """Parsed videos -> batch dicts equal to `_parse_batch`'s: zero padding to max_frames by `padded_batch`."""
        if not self.quantized:
            videos = videos.map(lambda video: {**video, "video_matrix": self._values(video["video_matrix"])})
        shapes = {key: spec.shape for key, spec in self._video_spec().items()}
        shapes["video_matrix"] = [self.max_frames, self.feature_dim]
        padding = {"video_ids": "", "video_matrix": tf.zeros([], videos.element_spec["video_matrix"].dtype),
                   "num_frames": 0, "labels": tf.constant(-1, tf.int64)}
        batches = videos.padded_batch(batch_size, shapes, padding, drop_remainder=drop_remainder)
        return batches.map(self._label_batch, num_parallel_calls=tf.data.AUTOTUNE)

    def _label_batch(self, batch):
        """(B, L) label ids padded with -1 -> the multi-hot labels."""
        ids = batch["labels"]
        listed = ids >= 0
        sparse = tf.SparseTensor(tf.where(listed), tf.boolean_mask(ids, listed), tf.shape(ids, out_type=tf.int64))
        return {**batch, "labels": self._multi_hot(sparse)}

    @staticmethod
    def _decode_frames(name, size, frames, used, padded_filenames):
        """One feature's ragged (B, None) frame strings -> uint8 codes (total frames, size).

        Only the used frames (`used`, the first num_frames of each video) must have `size` bytes; a wrong one fails
        naming the file. Unused frames may have any size (they are never read): they decode as zeros.
        """
        flat = frames.flat_values
        lengths = tf.strings.length(flat)
        rows = frames.value_rowids()
        right_size = tf.equal(lengths, size)
        wrong = tf.logical_and(tf.logical_not(right_size), used)
        first = tf.argmax(tf.concat([tf.cast(wrong, tf.int32), [0]], 0))  # padded: an empty batch has no frame
        message = tf.strings.join([
            f"frame feature '{name}' has a frame of ", tf.strings.as_string(tf.gather(tf.concat([lengths, [0]], 0),
                                                                                      first)),
            f" bytes, expected {size} (--feature_sizes) in '",
            tf.gather(padded_filenames, tf.gather(tf.concat([rows, [0]], 0), first)), "'"])
        check = tf.debugging.Assert(tf.logical_not(tf.reduce_any(wrong)), [message])
        flat = tf.cond(tf.reduce_all(right_size), lambda: flat,
                       lambda: tf.where(right_size, flat, tf.constant(b"\0" * size)))
        with tf.control_dependencies([check]):
            return tf.reshape(tf.io.decode_raw(flat, tf.uint8), [-1, size])

    def _video_segments(self, video):
        """One video's rated segments -> a stack of segment examples (the 2019 starter code's segment mode)."""
        starts, segment_index = tf.unique(video["segment_start_times"], out_idx=tf.int64)
        frame_index = starts[:, None] + tf.range(self.segment_size, dtype=tf.int64)[None, :]
        within = frame_index < tf.cast(video["num_frames"], tf.int64)
        frames = tf.gather(video["video_matrix"], tf.minimum(frame_index, self.max_frames - 1))
        frames = tf.where(within[:, :, None], frames, tf.zeros([], frames.dtype))
        count = tf.shape(starts)[0]
        pairs = tf.stack([segment_index, video["segment_labels"]], axis=1)
        out_of_range = tf.reduce_any(video["segment_labels"] >= self.num_classes)
        check = tf.debugging.Assert(tf.logical_not(out_of_range), [tf.strings.join([
            "segment label id >= --num_classes ", str(self.num_classes), " in video ", video["video_ids"]])])
        with tf.control_dependencies([check]):
            shape = tf.cast(tf.stack([count, self.num_classes]), tf.int64)
            labels = tf.scatter_nd(pairs, video["segment_scores"], shape)
            weights = tf.scatter_nd(pairs, tf.ones_like(video["segment_scores"]), shape)
        return {
            "video_ids": tf.fill([count], video["video_ids"]),
            "video_matrix": frames,
            "num_frames": tf.reduce_sum(tf.cast(within, tf.int32), axis=1),
            "labels": labels,
            "label_weights": tf.minimum(weights, 1.0),
            "segment_start_times": tf.cast(starts, tf.int32),
        }


def _frame_positions(frames):
    """The position of every frame of a ragged (B, None) feature within its video (flat, int64)."""
    return tf.range(tf.size(frames.flat_values, out_type=tf.int64)) - tf.gather(frames.row_splits,
                                                                                 frames.value_rowids())
