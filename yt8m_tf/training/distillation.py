"""Teachers for distillation (the 2018 winners: 0.5 x cross entropy to a teacher's predictions + 0.5 x the loss on
the labels): trained models run beside the student (`--teacher_dirs`), or their saved predictions
(`--teacher_predictions`, Kaggle-format files that inference.py writes; out-of-fold predictions, which a teacher
did not see while training, are the usual cure for a teacher that remembers its own training videos)."""

import numpy as np
import tensorflow as tf

import readers
from yt8m_tf import submission
from yt8m_tf.training import train_dir as train_dir_lib

TEACHER_KEY = "teacher_predictions"  # the batch key of the soft targets (B, num_classes)
INPUT_SETTINGS = ("frame_features", "feature_names", "feature_sizes", "num_classes", "max_frames")


class DistillationError(ValueError):
    """A teacher that cannot teach this student; the message is one line."""


def check_teachers(train_dirs, settings):
    """Each of the comma-separated `train_dirs` holds a trained model that reads the student's input (before
    anything is written). Returns the list of directories."""
    directories = [d.strip() for d in train_dirs.split(",") if d.strip()]
    keys = [k for k in INPUT_SETTINGS if k != "max_frames" or settings["frame_features"]]
    for train_dir in directories:
        teacher = train_dir_lib.read_settings(train_dir)
        if not train_dir_lib.latest_checkpoint(train_dir):
            raise DistillationError(f"--teacher_dirs '{train_dir}' has no checkpoint")
        different = [k for k in keys if teacher.get(k) != settings.get(k)]
        if different:
            key = different[0]
            raise DistillationError(f"--teacher_dirs '{train_dir}' reads other input than the student: {key} "
                                    f"{teacher.get(key)!r} (teacher) vs {settings.get(key)!r}")
    return directories


def load_teachers(directories):
    """The non-trainable models of `directories` (their weight averages when trained with --ema_decay); call under
    the strategy's scope."""
    teachers = [train_dir_lib.load_trained_model(d)[0] for d in directories]
    for teacher in teachers:
        teacher.trainable = False
    return teachers


def teacher_predictions(teachers, batch):
    """The teachers' mean probabilities (B, C) for a batch, without gradient."""
    outputs = [tf.cast(t(batch, training=False)["predictions"], tf.float32) for t in teachers]
    return tf.stop_gradient(tf.add_n(outputs) / len(outputs))


class PredictionTable:
    """Saved teacher predictions: every row of the comma-separated Kaggle-format files of `pattern` (video id, top-k
    class/score pairs) held in memory (N x k x 8 bytes), turned into (B, C) soft targets for a batch of video ids
    inside the input pipeline; classes outside a video's top k get 0. A training video without a row fails naming
    it."""

    def __init__(self, pattern, num_classes):
        self.pattern = pattern
        self.num_classes = int(num_classes)
        ids, classes, scores, source = [], [], [], {}
        for path in readers.list_files(pattern):
            try:
                rows = submission.read_video_rows(path)
            except ValueError as e:
                raise DistillationError(f"--teacher_predictions: {e}") from None
            for video_id in rows[0]:
                if video_id in source:
                    raise DistillationError(f"--teacher_predictions: video '{video_id}' has two rows ('{path}' and "
                                            f"'{source[video_id]}')")
                source[video_id] = path
                ids.append(video_id)
            if rows[1].size and rows[1].max() >= self.num_classes:
                raise DistillationError(f"--teacher_predictions '{path}' has class {rows[1].max()} >= "
                                        f"--num_classes {self.num_classes}")
            classes.append(rows[1])
            scores.append(rows[2])
        k = max(c.shape[1] for c in classes)
        # Variables, not constants: the input graph captures them (N x k can be gigabytes, past a graph's 2 GB).
        self.classes = tf.Variable(np.concatenate([np.pad(c, [(0, 0), (0, k - c.shape[1])]) for c in classes]),
                                   trainable=False)
        self.scores = tf.Variable(np.concatenate([np.pad(s, [(0, 0), (0, k - s.shape[1])]) for s in scores]),
                                  trainable=False)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(ids), tf.range(len(ids), dtype=tf.int64)), -1)

    def soft_targets(self, video_ids):
        """(B,) tf.string ids -> (B, num_classes) float32."""
        rows = self.table.lookup(video_ids)
        missing = tf.reduce_any(rows < 0)
        check = tf.debugging.Assert(tf.logical_not(missing), [tf.strings.join([
            "training video '", tf.gather(video_ids, tf.argmin(rows)), "' has no row in --teacher_predictions '",
            self.pattern, "'"])])
        with tf.control_dependencies([check]):
            rows = tf.maximum(rows, 0)
        classes, scores = tf.gather(self.classes, rows), tf.gather(self.scores, rows)
        batch = tf.shape(rows, out_type=tf.int64)[0]
        index = tf.stack([tf.repeat(tf.range(batch), tf.shape(classes, out_type=tf.int64)[1]),
                          tf.reshape(tf.cast(classes, tf.int64), [-1])], axis=1)
        return tf.scatter_nd(index, tf.reshape(scores, [-1]), tf.stack([batch, self.num_classes]))

    def add_to(self, batch):
        """The batch dict with `teacher_predictions` (a tf.data map function)."""
        targets = self.soft_targets(batch["video_ids"])
        return {**batch, TEACHER_KEY: tf.ensure_shape(targets, batch["labels"].shape)}
