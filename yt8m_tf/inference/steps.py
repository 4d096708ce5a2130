"""The tf.functions that score a batch: the weighted mean of the models' predictions and its top-k, for whole videos
or for the consecutive 5-frame segments of the 2019 competition (cut on the accelerator)."""

import numpy as np
import tensorflow as tf

from yt8m_tf.inference import plan

SEGMENT_SIZE = 5  # frames per segment in the 2019 competition (get_segments(..., 5) in the starter code)


def _ensemble(models, weights, views, video_matrix, num_frames):
    """The weighted mean of the models' predictions, each model reading its own view of the batch."""
    total = None
    for model, weight, view in zip(models, weights, views):
        inputs = plan.view(video_matrix, num_frames, view)
        predictions = tf.cast(model(inputs, training=False)["predictions"], tf.float32)
        if len(models) > 1:
            predictions = predictions * float(weight)
        total = predictions if total is None else total + predictions
    return total


def make_video_step(models, weights, views, top_k):
    """tf.function(video_matrix, num_frames) -> (scores [B, k], class ids [B, k]) of the weighted mean
    (top_k at most the number of classes)."""

    @tf.function(reduce_retracing=True)
    def step(video_matrix, num_frames):
        predictions = _ensemble(models, weights, views, video_matrix, num_frames)
        return tf.math.top_k(predictions, k=int(top_k), sorted=True)

    return step


def cut_segments(video_matrix, num_frames, segment_size=SEGMENT_SIZE):
    """(B, T, D) frames -> the consecutive `segment_size`-frame segments that hold at least one frame, as the 2019
    starter code's get_segments: (frames (S, segment_size, D), num_frames (S,) = min(remaining, segment_size),
    video index (S,), start frame (S,)), in video then time order."""
    frames = video_matrix.shape[1]
    padded = -(-frames // segment_size) * segment_size
    if padded != frames:
        video_matrix = tf.pad(video_matrix, [[0, 0], [0, padded - frames], [0, 0]])
    count = padded // segment_size
    segments = tf.reshape(video_matrix, [-1, count, segment_size, video_matrix.shape[-1]])
    starts = tf.range(count, dtype=tf.int32) * segment_size
    remaining = tf.clip_by_value(tf.cast(num_frames, tf.int32)[:, None] - starts[None, :], 0, segment_size)
    valid = remaining > 0
    where = tf.cast(tf.where(valid), tf.int32)
    return (tf.boolean_mask(segments, valid), tf.boolean_mask(remaining, valid), where[:, 0],
            where[:, 1] * segment_size)


def make_segment_step(models, weights, views, top_k, whitelist, num_classes):
    """tf.function(video_matrix, num_frames) -> per segment the top-k whitelisted (scores, classes), video index and
    start frame."""
    mask = np.zeros(num_classes, bool)
    mask[whitelist] = True
    mask = tf.constant(mask)
    k = min(int(top_k), len(whitelist))
    segment_views = [(columns, min(SEGMENT_SIZE, max_frames)) for columns, max_frames in views]

    @tf.function(reduce_retracing=True)
    def step(video_matrix, num_frames):
        frames, frame_counts, video_index, starts = cut_segments(video_matrix, num_frames)
        predictions = _ensemble(models, weights, segment_views, frames, frame_counts)
        predictions = tf.where(mask[None, :], predictions, -1.0)
        scores, classes = tf.math.top_k(predictions, k=k, sorted=True)
        return scores, classes, video_index, starts

    return step
