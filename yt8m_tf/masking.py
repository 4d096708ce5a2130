"""Frame masks built explicitly from ``num_frames`` (never guessed from all-zero rows)."""

from keras import ops


def frame_mask(num_frames, max_frames, dtype="float32"):
    """(B,) valid-frame counts -> (B, max_frames) mask, 1 for frames t < num_frames[b], else 0."""
    steps = ops.arange(max_frames, dtype="int32")
    mask = ops.expand_dims(steps, 0) < ops.expand_dims(ops.cast(num_frames, "int32"), 1)
    return ops.cast(mask, dtype)


def masked_sum(frames, mask):
    """Sum over valid frames: (B, T, D), (B, T) -> (B, D)."""
    return ops.sum(frames * ops.expand_dims(ops.cast(mask, frames.dtype), -1), axis=1)


def masked_mean(frames, mask):
    """Mean over valid frames; a 0-frame video gives zeros, not NaN."""
    total = masked_sum(frames, mask)
    count = ops.maximum(ops.sum(ops.cast(mask, frames.dtype), axis=1, keepdims=True), 1.0)
    return total / count


def masked_max(frames, mask):
    """Max over valid frames; a 0-frame video gives zeros, not -inf."""
    valid = ops.expand_dims(ops.cast(mask, "bool"), -1)
    lowest = ops.cast(-65504.0 if frames.dtype == "float16" else -3.0e38, frames.dtype)
    best = ops.max(ops.where(valid, frames, lowest), axis=1)
    any_valid = ops.any(valid, axis=1)
    return ops.where(any_valid, best, ops.zeros_like(best))
