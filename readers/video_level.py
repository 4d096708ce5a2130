"""Video-level reader: one tf.train.Example per video with mean features (`mean_rgb` float[1024],
`mean_audio` float[128]), `id` (2018+) or `video_id` (2017) and `labels` (absent in test files)."""

import tensorflow as tf

from readers.base import BaseReader
from readers.files import ReaderError


class VideoLevelReader(BaseReader):
    """Reads official video-level TFRecords into batch dicts.

    Output: `video_ids` tf.string (B,), `video_matrix` float32 (B, D) with the features concatenated in
    `feature_names` order, `num_frames` int32 (B,) all ones, `labels` float32 multi-hot (B, num_classes).
    Real 2018 records carry an empty `feature_lists` field; it is ignored.
    """

    level = "video"

    def __init__(self, feature_names="mean_rgb,mean_audio", feature_sizes="1024,128", num_classes=3862):
        super().__init__(feature_names, feature_sizes, num_classes)

    def _check_layout(self, path, context, sequence):
        for name, size in zip(self.feature_names, self.feature_sizes):
            if name not in context:
                hint = " (this is frame-level data: pass --frame_features)" if sequence else ""
                raise ReaderError(f"feature '{name}' not found in '{path}'{hint}; keys present: "
                                  f"{sorted(context)}" + (f" and frame features {sorted(sequence)}" if sequence else ""))
            length = len(context[name].float_list.value)
            if length != size:
                raise ReaderError(f"feature '{name}' in '{path}' has {length} values but --feature_sizes says {size}")

    def _parse_batch(self, filenames, records):
        spec = self._context_features()
        for name in self.feature_names:
            spec[name] = tf.io.RaggedFeature(tf.float32)
        parsed = tf.io.parse_example(records, spec)
        features = []
        for name, size in zip(self.feature_names, self.feature_sizes):
            lengths = parsed[name].row_lengths()
            wrong = tf.not_equal(lengths, size)
            first = tf.argmax(tf.cast(wrong, tf.int32))
            message = tf.strings.join([
                f"feature '{name}' has ", tf.strings.as_string(tf.gather(lengths, first)),
                f" values, expected {size} (--feature_sizes) in '", tf.gather(filenames, first), "'"])
            with tf.control_dependencies([tf.debugging.Assert(tf.logical_not(tf.reduce_any(wrong)), [message])]):
                features.append(parsed[name].to_tensor(shape=[None, size]))
        video_matrix = tf.concat(features, axis=1) if len(features) > 1 else features[0]
        return {
            "video_ids": self._video_ids(parsed),
            "video_matrix": video_matrix,
            "num_frames": tf.ones(tf.shape(records)[:1], tf.int32),
            "labels": self._multi_hot(self._check_labels(parsed["labels"], filenames)),
        }
