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

A model is a --train_dir written by train.py (its latest checkpoint) or one of its exports (train_dir/export/step_N).
As in the starter code, --input_model_tgz names a model archive (local or gs://) that is untarred into
--untar_model_dir and used instead of --train_dir, and --output_model_tgz writes the archive of the model used.

The output files are written to a temporary name in their directory and renamed when complete (local or gs://): an
interrupted or failed run leaves any previous file untouched. Errors are one line naming the flag or file, with
exit code 2. The library is yt8m_tf/inference/.
"""

import signal

from yt8m_tf import cli  # first: quiets TensorFlow's start-up logs before TensorFlow loads

from absl import flags  # noqa: E402

from yt8m_tf import inference, submission  # noqa: E402
from yt8m_tf.inference import archive  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """inference.py's flags, in `flag_values` (the global FLAGS, or a fresh FlagValues in tests)."""
    # Input (the starter code's names)
    flags.DEFINE_string("train_dir", "", "Directory of a model trained by train.py (model_flags.json + checkpoints) "
                        "or one of its exports (train_dir/export/step_N); a comma-separated list makes an ensemble.",
                        flag_values=flag_values)
    flags.DEFINE_string("ensemble_weights", "", "Comma-separated weights of the --train_dir models (default: equal).",
                        flag_values=flag_values)
    flags.DEFINE_string("input_data_pattern", "", "TFRecords to predict (glob, comma-separated, local or gs://).",
                        flag_values=flag_values)
    flags.DEFINE_string("input_model_tgz", "", "A .tgz model archive written by --output_model_tgz (local or gs://), "
                        "untarred into --untar_model_dir and used instead of --train_dir.", flag_values=flag_values)
    flags.DEFINE_string("untar_model_dir", archive.DEFAULT_UNTAR_DIR, "Where --input_model_tgz is untarred (created "
                        "if needed; it must not hold files of another model).", flag_values=flag_values)
    flags.DEFINE_bool("segment_labels", False, "Segment mode (2019): score 5-frame segments of frame-level input and "
                      "write Class,Segments rows.", flag_values=flag_values)
    flags.DEFINE_integer("segment_max_pred", submission.SEGMENT_MAX_PRED,
                         "Limit total number of segment outputs per entity (class).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_string("segment_label_ids_file", "",
                        "Local (or gs://) path of segment_label_ids.csv, the 2019 class whitelist; empty: all classes. "
                        "Nothing is downloaded.", flag_values=flag_values)
    # Output
    flags.DEFINE_string("output_file", "", "The file to save the predictions to (local or gs://).",
                        flag_values=flag_values)
    flags.DEFINE_string("output_model_tgz", "", "Also write a .tgz archive of the model used (model_flags.json and "
                        "its checkpoint, or its export), for --input_model_tgz; local or gs://.",
                        flag_values=flag_values)
    flags.DEFINE_integer("top_k", 20, "How many predictions to output per video (per segment in segment mode).",
                         lower_bound=1, flag_values=flag_values)
    # Other flags
    flags.DEFINE_integer("batch_size", 512, "How many videos to process per batch.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_integer("num_readers", 1, "How many files to read in parallel.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_bool("skip_corrupt_records", False,
                      "Skip corrupt or truncated TFRecord records (counted and reported) instead of stopping.",
                      flag_values=flag_values)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the writer, which removes its temporary file


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]} (flags take the form --name=value)")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        inference.run_inference(
            FLAGS.train_dir, FLAGS.input_data_pattern, FLAGS.output_file, top_k=FLAGS.top_k,
            batch_size=FLAGS.batch_size, num_readers=FLAGS.num_readers, ensemble_weights=FLAGS.ensemble_weights,
            segment_labels=FLAGS.segment_labels, segment_label_ids_file=FLAGS.segment_label_ids_file,
            segment_max_pred=FLAGS.segment_max_pred, skip_corrupt_records=FLAGS.skip_corrupt_records,
            input_model_tgz=FLAGS.input_model_tgz, untar_model_dir=FLAGS.untar_model_dir,
            output_model_tgz=FLAGS.output_model_tgz)
    except KeyError as e:
        cli.fail(f"a model_flags.json in --train_dir lacks the setting {e}")
    return 0


if __name__ == "__main__":
    define_flags()
    # ReaderError, TrainDirError, InferenceError and atomic.WriteError are ValueErrors with a one-line message;
    # errors from TensorFlow (out of memory, ...) become one line too (yt8m_tf.cli).
    cli.run(main, errors=(ValueError,))
