"""Random frame sampling of the starter code's DBoF model (google/youtube-8m `model_utils.py`).

`SampleRandomFrames` / `SampleRandomSequence` re-written with `keras.ops`: pure tensor code with a static output shape
(B, num_samples, D), so they trace under XLA. Two changes from the starter code, both only for videos with
num_frames = 0 (which the starter code never met): indices are clipped to >= 0 and the sampled rows are zeros
instead of whatever padding row 0 held. `seed` is anything `keras.random.uniform` accepts: None, an int (the same
draw on every eager call), or a `keras.random.SeedGenerator` (what layers pass, a fresh draw each call).
"""

import keras
import numpy as np
from keras import ops

from yt8m_tf.pooling.utils import valid_frames


def _gather_frames(frames, num_frames, frame_index):
    """(B, T, D) frames, (B,) counts, (B, K) int32 indices -> (B, K, D); rows of 0-frame videos are zeros."""
    num_features = frames.shape[-1]
    index = ops.broadcast_to(ops.expand_dims(frame_index, -1),
                             (ops.shape(frame_index)[0], ops.shape(frame_index)[1], num_features))
    sampled = ops.take_along_axis(frames, index, axis=1)
    has_frames = ops.reshape(ops.cast(num_frames, "int32") > 0, (-1, 1, 1))
    return ops.where(has_frames, sampled, ops.zeros_like(sampled))


def sample_random_frames(frames, num_frames, num_samples, seed=None):
    """`num_samples` frames drawn uniformly with replacement from each video's valid frames.

    index = floor(u * num_frames), u ~ U[0, 1) (as `SampleRandomFrames`), clipped to [0, num_frames - 1].

    Args:
        frames: (B, T, D) float.
        num_frames: (B,) int, valid frames per video.
        num_samples: Python int K.
        seed: None, int or `keras.random.SeedGenerator`.

    Returns:
        (B, K, D): every row a valid frame of its video; all zeros for a 0-frame video.
    """
    uniform = keras.random.uniform((ops.shape(frames)[0], num_samples), seed=seed)
    return _gather_frames(frames, num_frames, _uniform_index(uniform, num_frames))


def _uniform_index(uniform, num_frames):
    """(B, K) u in [0, 1) -> frame indices floor(u * num_frames), clipped to [0, num_frames - 1]."""
    count = ops.expand_dims(ops.cast(num_frames, "int32"), 1)
    index = ops.cast(ops.floor(uniform * ops.cast(count, uniform.dtype)), "int32")
    return ops.maximum(ops.minimum(index, count - 1), 0)


def sample_random_sequence(frames, num_frames, num_samples, seed=None):
    """A run of `num_samples` consecutive valid frames starting at a random offset (as `SampleRandomSequence`).

    start = floor(u * (max(num_frames - K, 0) + 1)); index = min(start + k, num_frames - 1) for k < K, so a video
    shorter than K repeats its last frame.

    Args:
        frames: (B, T, D) float.
        num_frames: (B,) int, valid frames per video.
        num_samples: Python int K.
        seed: None, int or `keras.random.SeedGenerator`.

    Returns:
        (B, K, D): consecutive valid frames; all zeros for a 0-frame video.
    """
    count = ops.expand_dims(ops.cast(num_frames, "int32"), 1)
    uniform = keras.random.uniform((ops.shape(frames)[0], 1), seed=seed)
    max_start = ops.maximum(count - num_samples, 0)
    start = ops.cast(ops.floor(uniform * ops.cast(max_start + 1, uniform.dtype)), "int32")
    start = ops.minimum(start, max_start)
    index = ops.minimum(start + ops.expand_dims(ops.arange(num_samples, dtype="int32"), 0), count - 1)
    return _gather_frames(frames, num_frames, ops.maximum(index, 0))


def frames_to_pool(frames, num_frames, sample_frames, random_frames=True, training=None, seed=None):
    """The (mask, frames) a sampling pooling aggregates (the starter's DBoF, WILLOW's clustering poolings).

    Training with `sample_frames` K > 0: K sampled valid frames (`sample_random_frames`, or a run of consecutive
    frames with `random_frames=False`), all marked valid except for 0-frame videos. Otherwise (evaluation, or
    K = 0): the frames as given, padding rows zeroed, and the (B, T) mask of the valid ones.

    Returns:
        (mask (B, T') bool, frames (B, T', D)).
    """
    if not (training and sample_frames > 0):
        return valid_frames(frames, num_frames)
    sampler = sample_random_frames if random_frames else sample_random_sequence
    sampled = sampler(frames, num_frames, sample_frames, seed=seed)
    has_frames = ops.expand_dims(ops.cast(num_frames, "int32") > 0, 1)
    return ops.broadcast_to(has_frames, (ops.shape(sampled)[0], sample_frames)), sampled


# frac(k / golden ratio): the points of a Kronecker sequence, spread evenly over [0, 1) in a scrambled order.
_GOLDEN = 0.6180339887498949


def sample_sequence_input(frames, num_frames, num_samples, training=None, seed=None):
    """WILLOW's `--lstm_random_sequence` input of a recurrent pooling: K frames drawn uniformly with replacement,
    in the order drawn, and the run length min(num_frames, K).

    WILLOW's `LstmModel` / `GruModel` fed `SampleRandomFrames(frames, num_frames, iterations)` to a `dynamic_rnn`
    with `sequence_length=num_frames`, which therefore stops after num_frames of the K samples for short videos.
    Training draws afresh (`sample_random_frames`). Evaluation (training falsy) takes fixed points instead of
    random ones (WILLOW drew at test time too): u_k = frac((k + 1) / golden ratio), k < K, so a video's frames
    do not depend on the run, the batch or the replica, are spread over the whole video and still unordered.

    Returns:
        (frames (B, K, D), num_frames (B,) int32).
    """
    count = ops.cast(num_frames, "int32")
    shape = (ops.shape(frames)[0], num_samples)
    if training:
        uniform = keras.random.uniform(shape, seed=seed)
    else:
        points = np.mod(np.arange(1, num_samples + 1) * _GOLDEN, 1.0).astype(np.float32)
        uniform = ops.broadcast_to(ops.convert_to_tensor(points[None]), shape)
    return _gather_frames(frames, count, _uniform_index(uniform, count)), ops.minimum(count, num_samples)
