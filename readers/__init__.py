"""tf.data readers for the official YouTube-8M TFRecords (2017, 2018 and 2019 layouts).

`FrameLevelReader(...).dataset(data_pattern, batch_size)` and `VideoLevelReader(...).dataset(...)` return a
tf.data.Dataset of batch dicts with the official names: `video_ids` (tf.string [B]), `video_matrix`
(float32 [B, max_frames, D] frame-level, [B, D] video-level), `num_frames` (int32 [B]) and `labels`
(float32 multi-hot [B, num_classes]). The id key (`id` in 2018+, `video_id` in 2017) is detected per record; test
files without `labels` read with all-zero labels.
"""

from readers.base import has_labels
from readers.files import CorruptRecordCounter, ReaderError, describe_error, list_files
from readers.frame_level import FrameLevelReader
from readers.video_level import VideoLevelReader


def get_reader(frame_features, feature_names, feature_sizes, num_classes, max_frames=300, segment_labels=False,
               quantized=False):
    """The reader the official flags ask for (the one place flags turn into a reader)."""
    if frame_features:
        return FrameLevelReader(feature_names, feature_sizes, num_classes, max_frames,
                                segment_labels=segment_labels, quantized=quantized)
    if segment_labels:
        raise ReaderError("--segment_labels needs frame-level data (--frame_features)")
    return VideoLevelReader(feature_names, feature_sizes, num_classes)


__all__ = ["CorruptRecordCounter", "FrameLevelReader", "ReaderError", "VideoLevelReader", "describe_error",
           "get_reader", "has_labels", "list_files"]
