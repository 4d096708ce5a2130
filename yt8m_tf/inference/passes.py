"""A pass over the input: each batch scored by a step (steps.py) and written as the submission's rows."""

import numpy as np

from yt8m_tf import submission
from yt8m_tf.inference.steps import SEGMENT_SIZE


def video_pass(dataset, step, out, stats):
    """``VideoId,LabelConfidencePairs`` rows, one per video in input order; counts go to `stats`."""
    out.write(submission.VIDEO_HEADER)
    seen = set()
    first_duplicate = None
    for batch in dataset:
        scores, classes = step(batch["video_matrix"], batch["num_frames"])
        ids = [v.decode("utf-8") for v in batch["video_ids"].numpy()]
        out.write(submission.format_video_rows(ids, classes.numpy(), scores.numpy()))
        for video_id in ids:
            if video_id in seen:
                stats["duplicates"] += 1
                first_duplicate = first_duplicate or video_id
            seen.add(video_id)
        stats["videos"] += len(ids)
        stats["rows"] += len(ids)
    if stats["duplicates"]:
        print(f"warning: {stats['duplicates']} rows repeat a video id seen before (first: '{first_duplicate}'); "
              "every row is kept", flush=True)


def segment_pass(dataset, step, out, stats, segment_max_pred, max_frames):
    """``Class,Segments`` rows: per class its best `segment_max_pred` segments, kept in bounded memory while the
    pass runs (submission.SegmentTopK) and written at the end; counts go to `stats`."""
    best = submission.SegmentTopK(segment_max_pred)
    per_video = -(-max_frames // SEGMENT_SIZE)
    video_ids = []
    for batch in dataset:
        scores, classes, video_index, starts = step(batch["video_matrix"], batch["num_frames"])
        scores, classes = scores.numpy(), classes.numpy()
        keys = (video_index.numpy().astype(np.int64) + len(video_ids)) * per_video + starts.numpy() // SEGMENT_SIZE
        best.add(classes, scores, np.repeat(keys, classes.shape[1]))
        video_ids.extend(v.decode("utf-8") for v in batch["video_ids"].numpy())
        stats["segments"] += len(keys)
    stats["videos"] = len(video_ids)
    ids = np.array(video_ids, dtype=str)
    suffixes = np.array([f":{i * SEGMENT_SIZE}" for i in range(per_video)])
    out.write(submission.SEGMENT_HEADER)
    for class_id, keys, _ in best.results():
        names = np.char.add(ids[keys // per_video], suffixes[keys % per_video])
        out.write(submission.format_segment_row(class_id, names.tolist()))
        stats["rows"] += 1
