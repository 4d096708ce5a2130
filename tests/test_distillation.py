"""Distillation: the loss mix by hand, saved teacher predictions as soft targets, teachers in the trainer."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import cli_testing as cli
from yt8m_tf import flags as yt8m_flags, losses, registry, submission
from yt8m_tf.training import distillation, optimization, step as step_lib, trainer
from yt8m_tf.training.evaluation import model_inputs

SETTINGS = yt8m_flags.default_model_settings(model="MoeModel", feature_names="mean_rgb,mean_audio",
                                             feature_sizes=f"{cli.RGB},{cli.AUDIO}", num_classes=cli.CLASSES)


def _ce(targets, predictions, eps=1e-5):
    return -sum(t * math.log(p + eps) + (1 - t) * math.log(1 - p + eps) for t, p in zip(targets, predictions))


def test_the_loss_mixes_the_labels_and_the_teacher():
    labels, student, teacher = [1.0, 0.0], [0.8, 0.3], [0.6, 0.1]
    value = step_lib.per_example_loss(losses.get_loss("CrossEntropyLoss"), tf.constant([labels]),
                                      {"predictions": tf.constant([student])}, tf.constant([teacher]), 0.5)
    expected = 0.5 * _ce(labels, student) + 0.5 * _ce(teacher, student)  # 0.5 x 0.580 + 0.5 x 1.219
    assert float(value[0]) == pytest.approx(expected, rel=1e-5) and expected == pytest.approx(0.8994, abs=1e-3)


def test_the_step_learns_from_the_teachers_mean(tmp_path):
    keras.utils.set_random_seed(0)
    student, first, second = (registry.build_model(SETTINGS) for _ in range(3))
    optimizer = optimization.make_optimizer("sgd", 0.1)
    optimizer.build(student.trainable_variables)
    rng = np.random.default_rng(0)
    batch = {"video_matrix": rng.normal(size=(4, cli.RGB + cli.AUDIO)).astype(np.float32),
             "num_frames": np.ones(4, np.int32), "labels": np.eye(cli.CLASSES, dtype=np.float32)[[1, 2, 3, 4]]}
    p = student(batch)["predictions"].numpy()
    t = (first(batch)["predictions"].numpy() + second(batch)["predictions"].numpy()) / 2
    step = step_lib.TrainStep(student, losses.get_loss("CrossEntropyLoss"), optimizer, 4, teachers=[first, second],
                              teacher_weight=0.3, regularization_penalty=0.0)
    loss = float(tf.function(step)(batch)["loss"])
    expected = np.mean([0.7 * _ce(y, row) + 0.3 * _ce(s, row) for y, row, s in zip(batch["labels"], p, t)])
    assert loss == pytest.approx(expected, rel=1e-5)


def test_saved_predictions_become_soft_targets(tmp_path):
    path = tmp_path / "teacher.csv"
    path.write_text("VideoId,LabelConfidencePairs\nvid1,3 0.5 1 0.25\nvid2,0 0.9\n")
    table = distillation.PredictionTable(str(path), 5)
    np.testing.assert_allclose(table.soft_targets(tf.constant(["vid2", "vid1"])).numpy(),
                               [[0.9, 0, 0, 0, 0], [0, 0.25, 0, 0.5, 0]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="training video 'nope' has no row in"):
        table.soft_targets(tf.constant(["vid1", "nope"]))
    (tmp_path / "bad.csv").write_text("VideoId,LabelConfidencePairs\nvid1,3 0.5 1\n")
    with pytest.raises(distillation.DistillationError, match="bad.csv' line 2 is not 'VideoId,label score"):
        distillation.PredictionTable(str(tmp_path / "bad.csv"), 5)
    with pytest.raises(distillation.DistillationError, match="has class 3 >= --num_classes 3"):
        distillation.PredictionTable(str(path), 3)
    (tmp_path / "again.csv").write_text("VideoId,LabelConfidencePairs\nvid2,1 0.5\n")
    with pytest.raises(distillation.DistillationError, match="video 'vid2' has two rows"):
        distillation.PredictionTable(f"{path},{tmp_path / 'again.csv'}", 5)


def test_trainer_distills_from_saved_predictions_and_from_teacher_dirs(tmp_path):
    data = cli.write_data(tmp_path)
    options = dict(train_data_pattern=data, batch_size=16, max_steps=3, shuffle_buffer=1, num_readers=1,
                   deterministic=True, progress=False, base_learning_rate=0.05)
    alone = trainer.train(SETTINGS, trainer.TrainOptions(train_dir=str(tmp_path / "alone"), **options))
    # A teacher that predicts the labels, at weight 1: the student learns exactly what it learns from the labels.
    reader = registry.make_reader(SETTINGS)
    with open(tmp_path / "labels.csv", "w") as f:
        f.write(submission.VIDEO_HEADER)
        for batch in reader.dataset(data, 64):
            scores, classes = tf.math.top_k(batch["labels"], k=cli.CLASSES)
            f.write(submission.format_video_rows(batch["video_ids"].numpy(), classes.numpy(), scores.numpy()))
    taught = trainer.train(SETTINGS, trainer.TrainOptions(train_dir=str(tmp_path / "taught"), distillation_weight=1.0,
                                                         teacher_predictions=str(tmp_path / "labels.csv"), **options))
    assert taught["weights"] == pytest.approx(alone["weights"], rel=1e-6)
    # A trained model as the teacher (its predictions, not the labels: the student learns something else); one
    # that reads other input is refused by name.
    student = trainer.train(SETTINGS, trainer.TrainOptions(train_dir=str(tmp_path / "student"),
                                                           teacher_dirs=str(tmp_path / "alone"), **options))
    assert student["weights"] != pytest.approx(alone["weights"], rel=1e-4)
    other = {**SETTINGS, "num_classes": cli.CLASSES + 1}
    with pytest.raises(distillation.DistillationError, match=r"'.*alone' reads other input than the student: "
                                                             r"num_classes 20 \(teacher\) vs 21"):
        trainer.train(other, trainer.TrainOptions(train_dir=str(tmp_path / "refused"),
                                                  teacher_dirs=str(tmp_path / "alone"), **options))
    assert not (tmp_path / "refused").exists()  # refused before anything was written


def test_a_nextvlad_mixture_trains_on_eq_16():
    """Lin et al. 2018 Eq. 16: the mixture's loss + every member's + T^2 x sum_m KL(softmax(z_e/T) || softmax(z_m/T))."""
    labels = np.array([[1.0, 0.0]], np.float32)
    mixture, members = np.array([[0.0, math.log(3.0)]]), np.array([[[0.0, 0.0], [math.log(3.0), 0.0]]])
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    outputs = {"predictions": tf.constant(sigmoid(mixture), tf.float32),
               "member_predictions": tf.constant(sigmoid(members), tf.float32),
               "member_logits": tf.constant(members, tf.float32), "mixture_logits": tf.constant(mixture, tf.float32)}
    value = step_lib.per_example_loss(losses.get_loss("CrossEntropyLoss"), tf.constant(labels), outputs,
                                      online_distillation={"temperature": 1.0, "weight": 2.0})
    # softmax: mixture [1/4, 3/4], member 0 [1/2, 1/2], member 1 [3/4, 1/4]
    kl = (0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)) + (0.25 * math.log(1 / 3) + 0.75 * math.log(3))
    expected = (_ce([1, 0], sigmoid(mixture[0])) + _ce([1, 0], sigmoid(members[0, 0]))
                + _ce([1, 0], sigmoid(members[0, 1])) + 2.0 * kl)
    assert float(value[0]) == pytest.approx(expected, rel=1e-5)
