"""Evaluates a trained model (google/youtube-8m eval.py flags): GAP, mAP, Hit@1, PERR and loss.

    python eval.py --eval_data_pattern='.../validate*.tfrecord' --train_dir=/tmp/model --run_once \
        --output_metrics=metrics.json

Without --run_once it waits for each new checkpoint in --train_dir and evaluates it, as the starter code does.
"""

import os
import time

from yt8m_tf import cli  # first: quiets TensorFlow's start-up logs before TensorFlow loads

import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

import readers  # noqa: E402
from yt8m_tf import atomic, label_stats, losses, metrics as metrics_lib, registry  # noqa: E402
from yt8m_tf.training import evaluation, summaries, train_dir as train_dir_lib  # noqa: E402

flags.DEFINE_string("eval_data_pattern", "", "Evaluation TFRecords (glob, comma-separated, local or gs://).")
flags.DEFINE_string("train_dir", "/tmp/yt8m_model/", "The directory train.py wrote.")
flags.DEFINE_integer("batch_size", 1024, "Videos per batch.", lower_bound=1)
flags.DEFINE_integer("top_k", 20, "Top predictions per video kept for GAP.", lower_bound=1)
flags.DEFINE_bool("run_once", False, "Evaluate the latest checkpoint once and exit.")
flags.DEFINE_bool("segment_labels", False, "Evaluate rated segments of 2019 segment-rated files.")
flags.DEFINE_string("output_metrics", "", "Write the metrics as JSON to this file.")
flags.DEFINE_integer("num_readers", 8, "Files read in parallel.", lower_bound=1)
flags.DEFINE_bool("skip_corrupt_records", False, "Skip (and count) corrupt TFRecord records.")
flags.DEFINE_integer("wait_seconds", 60, "Seconds between looks for a new checkpoint.", lower_bound=1)
flags.DEFINE_string("class_report", "", "Write per-class AP to this CSV (with names from --vocabulary_file; with "
                    "--segment_labels each class's segment AP@100K).")
flags.DEFINE_string("vocabulary_file", "", "The official vocabulary.csv, for class names and training counts.")
flags.DEFINE_string("class_report_plot", "", "Write a PNG of per-class AP against the class's training count "
                    "(needs --class_report, --vocabulary_file and matplotlib: pip install -e '.[plot]').")
FLAGS = flags.FLAGS


def evaluate_checkpoint(path, files, vocabulary=None):
    """Evaluates one checkpoint (the latest when `path` is None) on `files`, the --eval_data_pattern's;
    `vocabulary`: --vocabulary_file's table for the class report."""
    model, settings, step = train_dir_lib.load_trained_model(FLAGS.train_dir, checkpoint=path)
    if FLAGS.top_k > settings["num_classes"]:
        cli.fail(f"--top_k {FLAGS.top_k} is larger than the model's {settings['num_classes']} classes")
    reader = registry.make_reader(settings, segment_labels=FLAGS.segment_labels)
    corrupt = readers.CorruptRecordCounter() if FLAGS.skip_corrupt_records else None
    data = reader.dataset(FLAGS.eval_data_pattern, FLAGS.batch_size, num_readers=FLAGS.num_readers,
                          skip_corrupt=corrupt)
    loss_fn = losses.get_loss(settings["label_loss"], **registry.loss_kwargs(settings))
    started = time.time()
    try:
        if FLAGS.segment_labels:
            accumulator = metrics_lib.SegmentEvaluationMetrics(settings["num_classes"], top_k=FLAGS.top_k)
            results = _evaluate_segments(model, data, loss_fn, accumulator,
                                         per_class=settings["label_loss"] != "SoftmaxLoss")
        else:
            accumulator = metrics_lib.EvaluationMetrics(settings["num_classes"], top_k=FLAGS.top_k)
            results = evaluation.evaluate(model, data, FLAGS.batch_size, settings["num_classes"], loss_fn,
                                          FLAGS.top_k, accumulator=accumulator)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise readers.ReaderError(readers.describe_error(e, files)) from None
    if FLAGS.class_report:  # segments: each class's segment AP@100K, the terms of segment_map
        _write_class_report(accumulator.class_average_precisions(), accumulator, vocabulary)
    results["global_step"] = step
    seconds = time.time() - started
    print(f"step {step}: " + " | ".join(f"{k} {results[k]:.4f}" for k in evaluation.SUMMARY_KEYS)
          + f" | {results['num_examples']} videos, {results['num_examples'] / max(seconds, 1e-9):.0f} videos/s")
    if corrupt is not None:
        print(corrupt.summary())
    if _summary_dir():
        summaries.write_scalars(tf.summary.create_file_writer(_summary_dir()), step,
                                {k: results[k] for k in evaluation.SUMMARY_KEYS})
    if FLAGS.output_metrics:
        train_dir_lib.write_json(FLAGS.output_metrics, {k: _plain(v) for k, v in results.items()},
                                 "--output_metrics")
    return results


_SUMMARY_DIR = []


def _summary_dir():
    """train_dir/eval for TensorBoard, or "" (with one warning) when --train_dir is read-only: evaluating a model
    one may not write to is fine, the metrics are printed and go to --output_metrics."""
    if not _SUMMARY_DIR:
        path = os.path.join(FLAGS.train_dir, "eval")
        try:
            tf.io.gfile.makedirs(path)
            atomic.check_writable(os.path.join(path, "probe"), "--train_dir")
        except (atomic.WriteError, tf.errors.OpError, OSError) as e:
            print(f"warning: no TensorBoard summaries: cannot write to '{path}' ({cli.one_line(e)})", flush=True)
            path = ""
        _SUMMARY_DIR.append(path)
    return _SUMMARY_DIR[0]


def _plain(value):
    return int(value) if isinstance(value, int) else float(value)


def _evaluate_segments(model, data, loss_fn, accumulator, per_class=True):
    """Metrics of the rated segments; the loss, as in training, over the rated (segment, class) pairs only
    (`per_class` False: a loss without per-class terms, SoftmaxLoss, over every class)."""
    predict = tf.function(lambda inputs: model(inputs, training=False)["predictions"])
    for batch in data:
        predictions = predict(evaluation.model_inputs(batch))
        weighted = {"label_weights": batch["label_weights"]} if per_class else {}
        loss = loss_fn(batch["labels"], predictions, **weighted)
        accumulator.accumulate(predictions.numpy(), batch["labels"].numpy(), batch["label_weights"].numpy(),
                               loss.numpy())
    return accumulator.get()


def _write_class_report(aps, accumulator, vocabulary):
    import numpy as np
    import pandas as pd

    report = pd.DataFrame({"class": np.arange(len(aps)), "ap": aps, "positives": accumulator.class_positives})
    if vocabulary is not None:
        report = report.merge(vocabulary.rename(columns={"Index": "class"}), on="class", how="left")
    with atomic.AtomicFile(FLAGS.class_report, "w", "--class_report") as f:
        report.to_csv(f, index=False)
    print(f"per-class AP written to {FLAGS.class_report}")
    if FLAGS.class_report_plot:
        _plot_class_report(report)


def _plot_class_report(report):
    """AP against training frequency: the paper's label-imbalance question (2.2.5)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rated = report.dropna(subset=["ap"])
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    axes.scatter(rated["TrainVideoCount"], rated["ap"], s=4, alpha=0.5)
    axes.set_xscale("log")
    axes.set_xlabel("training videos of the class (vocabulary.csv TrainVideoCount)")
    axes.set_ylabel("average precision (top-k triplets)")
    axes.set_title(f"per-class AP, {len(rated)} classes with positives")
    figure.tight_layout()
    with atomic.AtomicFile(FLAGS.class_report_plot, "wb", "--class_report_plot") as f:
        figure.savefig(f, format="png", dpi=120)
    print(f"per-class AP plot written to {FLAGS.class_report_plot}")


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]} (flags take the form --name=value)")
    if not FLAGS.eval_data_pattern:
        cli.fail("--eval_data_pattern is required")
    if FLAGS.class_report_plot:
        if not (FLAGS.class_report and FLAGS.vocabulary_file):
            cli.fail("--class_report_plot needs --class_report and --vocabulary_file")
        try:
            import matplotlib  # noqa: F401  (optional extra)
        except ImportError:
            cli.fail("--class_report_plot needs matplotlib: pip install -e '.[plot]'")
    files = readers.list_files(FLAGS.eval_data_pattern)
    if not readers.has_labels(FLAGS.eval_data_pattern):
        cli.fail(f"--eval_data_pattern '{FLAGS.eval_data_pattern}' has no labels (Kaggle test files?): nothing to "
                 "evaluate; inference.py writes predictions for them")
    if not FLAGS.skip_corrupt_records:
        readers.files.check_truncation(files)
    for flag in ("output_metrics", "class_report", "class_report_plot"):  # before the evaluation, not after it
        atomic.check_writable(FLAGS[flag].value, f"--{flag}")
    if FLAGS.vocabulary_file and not FLAGS.class_report:
        cli.fail("--vocabulary_file names the classes of --class_report: pass --class_report too")
    # read before the evaluation: a missing or wrong file stops here, not after it
    vocabulary = label_stats.read_vocabulary(FLAGS.vocabulary_file, ["Index", "TrainVideoCount", "Name"]) \
        if FLAGS.vocabulary_file else None
    train_dir_lib.read_settings(FLAGS.train_dir)
    if FLAGS.run_once:
        if not train_dir_lib.latest_checkpoint(FLAGS.train_dir):
            cli.fail(f"--train_dir '{FLAGS.train_dir}' has no checkpoint yet (train.py writes one every "
                     "--checkpoint_steps steps and at the end)")
        evaluate_checkpoint(None, files, vocabulary)
        return
    if not train_dir_lib.latest_checkpoint(FLAGS.train_dir):
        print(f"waiting for a checkpoint in '{FLAGS.train_dir}' (every {FLAGS.wait_seconds} s)", flush=True)
    for path in tf.train.checkpoints_iterator(FLAGS.train_dir, min_interval_secs=FLAGS.wait_seconds):
        evaluate_checkpoint(path, files, vocabulary)


if __name__ == "__main__":
    cli.run(main)
