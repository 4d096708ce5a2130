"""Frame-level reader: one tf.train.SequenceExample per video; context `id`/`video_id` and `labels`, feature lists
`rgb` and `audio` holding one bytes value per frame (1024 / 128 uint8 codes, 1 frame per second)."""

import tensorflow as tf

from readers.base import BaseReader
from readers.files import ReaderError
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
        """Parses a batch of records into the batch dict.

        Frames are parsed as ragged lists (no padding of the string tensor), each feature's valid frames are
        decoded with one `decode_raw` over the flat list (every frame has the same size), and the (B, max_frames, D)
        matrix is built once from the flat codes (`RaggedTensor.to_tensor`, which pads with zeros and truncates to
        max_frames). When not quantized the codes are dequantized before padding, over the valid frames only.
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
        codes = [self._decode_frames(name, size, f, num_frames, padded_filenames)
                 for name, size, f in zip(self.feature_names, self.feature_sizes, frames)]
        splits = [f.row_splits for f in frames]
        width = self.feature_dim

        def dense(values, row_splits, depth):
            ragged = tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)
            return ragged.to_tensor(shape=[None, self.max_frames, depth])

        def values(flat):
            return flat if self.quantized else dequantize(flat, tf)

        def same_lengths():
            # Every feature has the same number of frames in every video (the official files): one matrix from the
            # concatenated flat codes, whose rows are exactly the first num_frames frames once truncated.
            flat = tf.concat(codes, axis=1) if len(codes) > 1 else codes[0]
            return dense(values(flat), splits[0], width)

        def different_lengths():
            parts = [dense(values(c), s, size) for c, s, size in zip(codes, splits, self.feature_sizes)]
            matrix = tf.concat(parts, axis=2) if len(parts) > 1 else parts[0]
            valid = tf.sequence_mask(num_frames, self.max_frames)
            return tf.where(valid[:, :, None], matrix, tf.zeros([], matrix.dtype))

        if len(frames) > 1:
            equal = tf.reduce_all([tf.reduce_all(tf.equal(s, splits[0])) for s in splits[1:]])
            video_matrix = tf.cond(equal, same_lengths, different_lengths)
        else:
            video_matrix = same_lengths()
        video_matrix = tf.ensure_shape(video_matrix, [None, self.max_frames, width])
        batch = {
            "video_ids": self._video_ids(context),
            "video_matrix": video_matrix,
            "num_frames": tf.cast(num_frames, tf.int32),
            "labels": self._multi_hot(context["labels"], filenames),
        }
        if self.segment_labels:
            for key in ("segment_labels", "segment_start_times", "segment_scores"):
                batch[key] = context[key]
        return batch

    @staticmethod
    def _decode_frames(name, size, frames, num_frames, padded_filenames):
        """One feature's ragged (B, None) frame strings -> uint8 codes (total frames, size).

        Only the frames that are used (the first num_frames of each video) must have `size` bytes; a wrong one fails
        naming the file. Frames past num_frames may have any size (they are never read): they decode as zeros.
        """
        flat = frames.flat_values
        lengths = tf.strings.length(flat)
        rows = frames.value_rowids()
        position = tf.range(tf.size(flat, out_type=tf.int64)) - tf.gather(frames.row_splits, rows)
        right_size = tf.equal(lengths, size)
        wrong = tf.logical_and(tf.logical_not(right_size), position < tf.gather(num_frames, rows))
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
