"""Writes a Kaggle submission file from trained models (google/youtube-8m's inference.py, flag names kept).

    python inference.py --train_dir=/tmp/yt8m_model --input_data_pattern='/data/test*.tfrecord' \\
        --output_file=/tmp/predictions.csv

Video mode (default): one row ``VideoId,LabelConfidencePairs`` per input video (unlabelled test videos and 0-frame
videos included), the top_k classes as ``"%i %g"`` pairs by descending score. Segment mode (--segment_labels, the
2019 competition): each video's frames are cut into consecutive 5-frame segments (start frames 0, 5, 10, ...; the last
one may be shorter), every segment is scored, and the file holds ``Class,Segments`` rows: per whitelisted class
(--segment_label_ids_file) its best --segment_max_pred segments as ``video_id:start`` by descending score.

--train_dir may list several directories (comma-separated): an ensemble. Each model is rebuilt from its own
model_flags.json; the input is read once (the union of the models' features, the largest max_frames) and each model
gets its own features and max_frames from that batch. Scores are the weighted mean of the models' predictions
(--ensemble_weights, normalised; equal by default) and the top-k is taken on the accelerator, so the host sees only
B x top_k values per batch.

The output file is written to a temporary name in its directory and renamed when complete (local or gs://): an
interrupted or failed run leaves any previous file untouched. Errors are one line naming the flag or file, with a
non-zero exit code.
"""

import signal
import time

from yt8m_tf import cli  # first: quiets TensorFlow's C++ logs before TensorFlow loads

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

import readers  # noqa: E402
from readers.base import split_features  # noqa: E402
from yt8m_tf import registry, submission  # noqa: E402
from yt8m_tf.training import train_dir as train_dir_lib  # noqa: E402

FLAGS = flags.FLAGS

SEGMENT_SIZE = 5  # frames per segment in the 2019 competition (get_segments(..., 5) in the starter code)


def define_flags():
    # Input (the starter code's names)
    flags.DEFINE_string("train_dir", "", "Directory of a model trained by train.py (model_flags.json + checkpoints); "
                        "a comma-separated list makes an ensemble.")
    flags.DEFINE_string("ensemble_weights", "", "Comma-separated weights of the --train_dir models (default: equal).")
    flags.DEFINE_string("input_data_pattern", "", "TFRecords to predict (glob, comma-separated, local or gs://).")
    flags.DEFINE_bool("segment_labels", False, "Segment mode (2019): score 5-frame segments of frame-level input and "
                      "write Class,Segments rows.")
    flags.DEFINE_integer("segment_max_pred", submission.SEGMENT_MAX_PRED,
                         "Limit total number of segment outputs per entity (class).", lower_bound=1)
    flags.DEFINE_string("segment_label_ids_file", "",
                        "Local (or gs://) path of segment_label_ids.csv, the 2019 class whitelist; empty: all classes. "
                        "Nothing is downloaded.")
    # Output
    flags.DEFINE_string("output_file", "", "The file to save the predictions to (local or gs://).")
    flags.DEFINE_integer("top_k", 20, "How many predictions to output per video (per segment in segment mode).",
                         lower_bound=1)
    # Other flags
    flags.DEFINE_integer("batch_size", 512, "How many videos to process per batch.", lower_bound=1)
    flags.DEFINE_integer("num_readers", 1, "How many files to read in parallel.", lower_bound=1)
    flags.DEFINE_bool("skip_corrupt_records", False,
                      "Skip corrupt or truncated TFRecord records (counted and reported) instead of stopping.")


class InferenceError(ValueError):
    """Flags, models or input that cannot be used; the message is one line."""


# ---------------------------------------------------------------------------------------------------------------
# Models and the shared input.
# ---------------------------------------------------------------------------------------------------------------

def parse_weights(text, count):
    """'1,3' -> normalised float array; empty -> equal weights."""
    if not text or not str(text).strip():
        return np.full(count, 1.0 / count)
    try:
        weights = np.array([float(w) for w in str(text).split(",")], np.float64)
    except ValueError:
        raise InferenceError(f"--ensemble_weights '{text}' must be comma-separated numbers") from None
    if len(weights) != count:
        raise InferenceError(f"--ensemble_weights has {len(weights)} values but --train_dir lists {count} models")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        raise InferenceError(f"--ensemble_weights '{text}' must be non-negative with a positive sum")
    return weights / weights.sum()


def plan_input(settings_list, train_dirs):
    """One read for every model: returns (reader settings, per-model views).

    A view is (feature columns of the shared video_matrix or None when the model reads them all in order,
    the model's max_frames or None for video-level models). The models must agree on the level (frame/video), the
    number of classes and the size of every feature they share. Frame-level num_frames is the shortest of the read
    features' lengths (equal in the official files), so a model reading fewer features sees the same count.
    """
    levels = [bool(s["frame_features"]) for s in settings_list]
    if len(set(levels)) > 1:
        frame = [d for d, f in zip(train_dirs, levels) if f]
        video = [d for d, f in zip(train_dirs, levels) if not f]
        raise InferenceError(f"--train_dir mixes frame-level models ({', '.join(frame)}) and video-level models "
                             f"({', '.join(video)}); one pass reads one input layout: ensemble models of one level")
    classes = {int(s["num_classes"]) for s in settings_list}
    if len(classes) > 1:
        raise InferenceError("--train_dir models predict different numbers of classes ("
                             + ", ".join(f"{d}: {s['num_classes']}" for d, s in zip(train_dirs, settings_list)) + ")")
    names, sizes, owner = [], [], {}
    per_model = []
    for directory, settings in zip(train_dirs, settings_list):
        model_names, model_sizes = split_features(settings["feature_names"], settings["feature_sizes"])
        for name, size in zip(model_names, model_sizes):
            if name in owner and sizes[names.index(name)] != size:
                raise InferenceError(f"feature '{name}' has size {sizes[names.index(name)]} in the model of "
                                     f"'{owner[name]}' but {size} in the model of '{directory}': one read cannot "
                                     "serve both")
            if name not in owner:
                owner[name] = directory
                names.append(name)
                sizes.append(size)
        per_model.append(model_names)
    offsets = np.cumsum([0] + sizes)
    frame_level = levels[0]
    max_frames = max(int(s["max_frames"]) for s in settings_list)
    views = []
    for model_names, settings in zip(per_model, settings_list):
        columns = None
        if model_names != names:
            columns = np.concatenate([np.arange(offsets[names.index(n)], offsets[names.index(n) + 1])
                                      for n in model_names]).astype(np.int32)
        views.append((columns, int(settings["max_frames"]) if frame_level else None))
    reader_settings = {"frame_features": frame_level, "feature_names": ",".join(names),
                       "feature_sizes": ",".join(str(s) for s in sizes), "num_classes": classes.pop(),
                       "max_frames": max_frames}
    return reader_settings, views


def _view(video_matrix, num_frames, view):
    """The batch as one model of the ensemble reads it: its features, at most its max_frames."""
    columns, max_frames = view
    if max_frames is not None and video_matrix.shape[1] > max_frames:
        video_matrix = video_matrix[:, :max_frames]
        num_frames = tf.minimum(num_frames, max_frames)
    if columns is not None:
        video_matrix = tf.gather(video_matrix, columns, axis=-1)
    return {"video_matrix": video_matrix, "num_frames": num_frames}


def _ensemble(models, weights, views, video_matrix, num_frames):
    total = None
    for model, weight, view in zip(models, weights, views):
        predictions = tf.cast(model(_view(video_matrix, num_frames, view), training=False)["predictions"], tf.float32)
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


def load_models(train_dirs):
    models, settings_list = [], []
    for directory in train_dirs:
        model, settings, step = train_dir_lib.load_trained_model(directory)
        print(f"loaded {settings['model']} from '{directory}' (step {step})", flush=True)
        models.append(model)
        settings_list.append(settings)
    return models, settings_list


# ---------------------------------------------------------------------------------------------------------------
# The pass.
# ---------------------------------------------------------------------------------------------------------------

def run_inference(train_dir, input_data_pattern, output_file, top_k=20, batch_size=512, num_readers=1,
                  ensemble_weights="", segment_labels=False, segment_label_ids_file="",
                  segment_max_pred=submission.SEGMENT_MAX_PRED, skip_corrupt_records=False):
    """Writes the submission file; returns a dict of counts (rows, videos, seconds, ...)."""
    if not train_dir or not str(train_dir).strip():
        raise InferenceError("--train_dir was not given")
    if not input_data_pattern or not str(input_data_pattern).strip():
        raise InferenceError("--input_data_pattern was not given")
    if not output_file:
        raise InferenceError("--output_file was not given")
    if int(top_k) <= 0 or int(batch_size) <= 0 or int(segment_max_pred) <= 0:
        raise InferenceError("--top_k, --batch_size and --segment_max_pred must be positive")
    train_dirs = [d.strip() for d in str(train_dir).split(",") if d.strip()]
    weights = parse_weights(ensemble_weights, len(train_dirs))
    files = readers.list_files(input_data_pattern)
    if not skip_corrupt_records:
        readers.files.check_truncation(files)
    models, settings_list = load_models(train_dirs)
    reader_settings, views = plan_input(settings_list, train_dirs)
    num_classes = reader_settings["num_classes"]
    if int(top_k) > num_classes:
        raise InferenceError(f"--top_k {top_k} is larger than the model's {num_classes} classes")
    if segment_labels and not reader_settings["frame_features"]:
        raise InferenceError("--segment_labels needs frame-level models (model_flags.json of --train_dir has "
                             "frame_features false) and frame-level input")
    whitelist = None
    if segment_labels:
        if segment_label_ids_file:
            try:
                whitelist = submission.read_segment_label_ids(segment_label_ids_file, num_classes)
            except ValueError as e:
                raise InferenceError(str(e)) from None
        else:
            print("warning: no --segment_label_ids_file: every class is ranked (the 2019 competition scores only "
                  "the 1000 classes of segment_label_ids.csv)", flush=True)
            whitelist = np.arange(num_classes)
    reader = registry.make_reader(reader_settings)
    counter = readers.CorruptRecordCounter() if skip_corrupt_records else None
    dataset = reader.dataset(input_data_pattern, batch_size, num_readers=num_readers, skip_corrupt=counter)

    if segment_labels:
        step = make_segment_step(models, weights, views, top_k, whitelist, num_classes)
    else:
        step = make_video_step(models, weights, views, min(int(top_k), num_classes))

    stats = {"videos": 0, "rows": 0, "segments": 0, "duplicates": 0}
    with submission.AtomicWriter(output_file) as out:
        print(f"started: {len(models)} model(s), {len(files)} input file(s) matching '{input_data_pattern}' -> "
              f"'{output_file}'", flush=True)
        started = time.time()
        try:
            if segment_labels:
                _segment_pass(dataset, step, out, stats, segment_max_pred, reader_settings["max_frames"])
            else:
                _video_pass(dataset, step, out, stats)
        except tf.errors.OpError as e:
            raise InferenceError(readers.describe_error(e, files)) from None
        stats["seconds"] = time.time() - started
    speed = stats["videos"] / max(stats["seconds"], 1e-9)
    if segment_labels:
        print(f"wrote {stats['rows']} class rows ({stats['segments']} segments of {stats['videos']} videos) to "
              f"'{output_file}' in {stats['seconds']:.1f}s ({speed:.0f} videos/s)", flush=True)
    else:
        print(f"wrote {stats['rows']} rows ({stats['videos']} videos) to '{output_file}' in "
              f"{stats['seconds']:.1f}s ({speed:.0f} videos/s)", flush=True)
    if counter is not None:
        print(counter.summary(), flush=True)
    return stats


def _video_pass(dataset, step, out, stats):
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


def _segment_pass(dataset, step, out, stats, segment_max_pred, max_frames):
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
    ids = np.array(video_ids, dtype=str) if video_ids else np.zeros(0, str)
    suffixes = np.array([f":{i * SEGMENT_SIZE}" for i in range(per_video)])
    out.write(submission.SEGMENT_HEADER)
    for class_id, keys, _ in best.results():
        names = np.char.add(ids[keys // per_video], suffixes[keys % per_video])
        out.write(submission.format_segment_row(class_id, names.tolist()))
        stats["rows"] += 1


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the writer, which removes its temporary file


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]} (flags take the form --name=value)")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        run_inference(FLAGS.train_dir, FLAGS.input_data_pattern, FLAGS.output_file, top_k=FLAGS.top_k,
                      batch_size=FLAGS.batch_size, num_readers=FLAGS.num_readers,
                      ensemble_weights=FLAGS.ensemble_weights, segment_labels=FLAGS.segment_labels,
                      segment_label_ids_file=FLAGS.segment_label_ids_file, segment_max_pred=FLAGS.segment_max_pred,
                      skip_corrupt_records=FLAGS.skip_corrupt_records)
    except KeyError as e:
        cli.fail(f"a model_flags.json in --train_dir lacks the setting {e}")
    return 0


if __name__ == "__main__":
    define_flags()
    # ReaderError, TrainDirError, InferenceError and the writer's errors are ValueErrors with a one-line message;
    # errors from TensorFlow (out of memory, ...) become one line too (yt8m_tf.cli).
    cli.run(main, errors=(ValueError,))
