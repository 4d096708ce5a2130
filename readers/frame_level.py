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

    def _transform(self, batches, batch_size, drop_remainder):
        videos = batches.map(self._parse_batch, num_parallel_calls=tf.data.AUTOTUNE)
        if not self.segment_labels:
            return videos
        # Segments: the rated segments of the parsed videos, re-batched to the same batch size.
        segments = videos.unbatch().map(self._video_segments, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        return segments.batch(batch_size, drop_remainder=drop_remainder)

    def _parse_batch(self, filenames, records):
        spec = self._context_features()
        if self.segment_labels:
            spec.update({"segment_labels": tf.io.RaggedFeature(tf.int64),
                         "segment_start_times": tf.io.RaggedFeature(tf.int64),
                         "segment_scores": tf.io.RaggedFeature(tf.float32)})
        sequence_spec = {name: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
                         for name in self.feature_names}
        context, sequence, lengths = tf.io.parse_sequence_example(records, context_features=spec,
                                                                  sequence_features=sequence_spec)
        num_frames = tf.reduce_min(tf.stack([lengths[n] for n in self.feature_names]), axis=0)
        num_frames = tf.cast(tf.minimum(num_frames, self.max_frames), tf.int32)
        valid = tf.sequence_mask(num_frames, self.max_frames)
        features = []
        for name, size in zip(self.feature_names, self.feature_sizes):
            frames = sequence[name][:, :self.max_frames]
            frames = tf.pad(frames, [[0, 0], [0, self.max_frames - tf.shape(frames)[1]]])
            wrong = tf.logical_and(valid, tf.not_equal(tf.strings.length(frames), size))
            flat = tf.argmax(tf.cast(tf.reshape(wrong, [-1]), tf.int32))
            message = tf.strings.join([
                f"frame feature '{name}' has a frame of ", tf.strings.as_string(
                    tf.strings.length(tf.gather(tf.reshape(frames, [-1]), flat))),
                f" bytes, expected {size} (--feature_sizes) in '", tf.gather(filenames, flat // self.max_frames), "'"])
            with tf.control_dependencies([tf.debugging.Assert(tf.logical_not(tf.reduce_any(wrong)), [message])]):
                codes = tf.io.decode_raw(frames, tf.uint8, fixed_length=size)
            features.append(tf.reshape(codes, [-1, self.max_frames, size]))
        video_matrix = tf.concat(features, axis=2) if len(features) > 1 else features[0]
        if not self.quantized:
            video_matrix = dequantize(video_matrix, tf)
        video_matrix = tf.where(valid[:, :, None], video_matrix, tf.zeros([], video_matrix.dtype))
        batch = {
            "video_ids": self._video_ids(context),
            "video_matrix": video_matrix,
            "num_frames": num_frames,
            "labels": self._multi_hot(context["labels"], filenames),
        }
        if self.segment_labels:
            for key in ("segment_labels", "segment_start_times", "segment_scores"):
                batch[key] = context[key]
        return batch

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
