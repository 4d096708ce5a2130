"""`run_inference`: the whole job of inference.py, every check made before any long work."""

import time

import numpy as np
import tensorflow as tf

import readers
from yt8m_tf import atomic, registry, submission
from yt8m_tf.inference import archive, models as models_lib, passes, plan, steps
from yt8m_tf.inference.errors import InferenceError


def _check_arguments(train_dir, input_data_pattern, output_file, input_model_tgz, output_model_tgz, top_k,
                     batch_size, segment_max_pred):
    """The flags alone (nothing read yet): returns the --train_dir list ([] with --input_model_tgz)."""
    train_dirs = [d.strip() for d in str(train_dir or "").split(",") if d.strip()]
    if input_model_tgz and train_dirs:
        raise InferenceError("give --train_dir or --input_model_tgz, not both")
    if not train_dirs and not input_model_tgz:
        raise InferenceError("--train_dir was not given (nor --input_model_tgz)")
    if not input_data_pattern or not str(input_data_pattern).strip():
        raise InferenceError("--input_data_pattern was not given")
    if not output_file:
        raise InferenceError("--output_file was not given")
    if int(top_k) <= 0 or int(batch_size) <= 0 or int(segment_max_pred) <= 0:
        raise InferenceError("--top_k, --batch_size and --segment_max_pred must be positive")
    if output_model_tgz and len(train_dirs) > 1:
        raise InferenceError(f"--output_model_tgz archives one model, but --train_dir lists {len(train_dirs)}")
    return train_dirs


def _whitelist(segment_label_ids_file, num_classes):
    """The classes segment mode ranks: segment_label_ids.csv's, or every class (with a warning)."""
    if not segment_label_ids_file:
        print("warning: no --segment_label_ids_file: every class is ranked (the 2019 competition scores only "
              "the 1000 classes of segment_label_ids.csv)", flush=True)
        return np.arange(num_classes)
    try:
        return submission.read_segment_label_ids(segment_label_ids_file, num_classes)
    except ValueError as e:
        raise InferenceError(str(e)) from None


def run_inference(train_dir, input_data_pattern, output_file, top_k=20, batch_size=512, num_readers=1,
                  ensemble_weights="", segment_labels=False, segment_label_ids_file="",
                  segment_max_pred=submission.SEGMENT_MAX_PRED, skip_corrupt_records=False, input_model_tgz="",
                  untar_model_dir=archive.DEFAULT_UNTAR_DIR, output_model_tgz=""):
    """Writes the submission file (and the model archive); returns a dict of counts (rows, videos, seconds, ...).

    `train_dir`: a comma-separated list of model directories (models.py), or empty with `input_model_tgz`, a model
    archive untarred into `untar_model_dir` first. `output_model_tgz`: the archive of the model used (one model).
    """
    train_dirs = _check_arguments(train_dir, input_data_pattern, output_file, input_model_tgz, output_model_tgz,
                                  top_k, batch_size, segment_max_pred)
    weights = plan.parse_weights(ensemble_weights, max(len(train_dirs), 1))
    files = readers.list_files(input_data_pattern)
    if not skip_corrupt_records:
        readers.files.check_truncation(files)
    atomic.check_writable(output_model_tgz, "--output_model_tgz")
    if input_model_tgz:
        train_dirs = [archive.extract(input_model_tgz, untar_model_dir)]
    models, settings_list, sources = models_lib.load_all(train_dirs)
    reader_settings, views = plan.plan_input(settings_list, train_dirs)
    num_classes = reader_settings["num_classes"]
    if int(top_k) > num_classes:
        raise InferenceError(f"--top_k {top_k} is larger than the model's {num_classes} classes")
    if segment_labels and not reader_settings["frame_features"]:
        raise InferenceError("--segment_labels needs frame-level models (model_flags.json of --train_dir has "
                             "frame_features false) and frame-level input")
    if segment_labels:
        step = steps.make_segment_step(models, weights, views, top_k, _whitelist(segment_label_ids_file, num_classes),
                                       num_classes)
    else:
        step = steps.make_video_step(models, weights, views, int(top_k))
    reader = registry.make_reader(reader_settings)
    counter = readers.CorruptRecordCounter() if skip_corrupt_records else None
    dataset = reader.dataset(input_data_pattern, batch_size, num_readers=num_readers, skip_corrupt=counter)

    stats = {"videos": 0, "rows": 0, "segments": 0, "duplicates": 0}
    with atomic.AtomicFile(output_file, "w", "output file") as out:
        print(f"started: {len(models)} model(s), {len(files)} input file(s) matching '{input_data_pattern}' -> "
              f"'{output_file}'", flush=True)
        started = time.time()
        try:
            if segment_labels:
                passes.segment_pass(dataset, step, out, stats, segment_max_pred, reader_settings["max_frames"])
            else:
                passes.video_pass(dataset, step, out, stats)
        except tf.errors.OpError as e:
            raise InferenceError(readers.describe_error(e, files)) from None
        stats["seconds"] = time.time() - started
        if output_model_tgz:  # before the submission is renamed into place: a failure leaves neither
            archive.write(sources[0], output_model_tgz)
    _report(stats, output_file, segment_labels, counter)
    return stats


def _report(stats, output_file, segment_labels, counter):
    speed = stats["videos"] / max(stats["seconds"], 1e-9)
    if segment_labels:
        print(f"wrote {stats['rows']} class rows ({stats['segments']} segments of {stats['videos']} videos) to "
              f"'{output_file}' in {stats['seconds']:.1f}s ({speed:.0f} videos/s)", flush=True)
    else:
        print(f"wrote {stats['rows']} rows ({stats['videos']} videos) to '{output_file}' in "
              f"{stats['seconds']:.1f}s ({speed:.0f} videos/s)", flush=True)
    if counter is not None:
        print(counter.summary(), flush=True)
