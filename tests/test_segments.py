"""The 2019 segment task: training on segment ratings (only rated pairs count), fine-tuning a video-level model
(--init_from, --freeze), and what that gains on synthetic segment data."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from yt8m_tf.inference import run_inference
from tests import cli_testing as cli
from yt8m_tf import flags as yt8m_flags, losses, metrics, registry, synthetic
from yt8m_tf.training import optimization, step as step_lib, train_dir as train_dir_lib, trainer
from yt8m_tf.training.evaluation import model_inputs

SETTINGS = yt8m_flags.default_model_settings(
    model="MeanPoolingModel", video_level_classifier_model="MoeModel", frame_features=True,
    feature_names="rgb,audio", feature_sizes=f"{cli.RGB},{cli.AUDIO}", num_classes=cli.CLASSES, max_frames=40)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("segments"))
    common = dict(level="frame", num_classes=cli.CLASSES, rgb_size=cli.RGB, audio_size=cli.AUDIO, min_frames=20,
                  max_frames=40, segments=True)
    synthetic.write_dataset(root, num_shards=2, videos_per_shard=96, seed=0, prefix="train", **common)
    synthetic.write_dataset(root, num_shards=1, videos_per_shard=96, seed=1, prefix="validate", **common)
    return {"train": f"{root}/train*.tfrecord", "validate": f"{root}/validate*.tfrecord"}


def _options(data, train_dir, **overrides):
    values = dict(train_data_pattern=data["train"], train_dir=str(train_dir), batch_size=32, progress=False,
                  base_learning_rate=0.02, shuffle_buffer=256, checkpoint_steps=0)
    return trainer.TrainOptions(**{**values, **overrides})


def _segment_metrics(train_dir, pattern):
    model, settings, _ = train_dir_lib.load_trained_model(str(train_dir))
    accumulator = metrics.SegmentEvaluationMetrics(settings["num_classes"])
    for batch in registry.make_reader(settings, segment_labels=True).dataset(pattern, 64):
        accumulator.accumulate(model(model_inputs(batch))["predictions"].numpy(), batch["labels"].numpy(),
                               batch["label_weights"].numpy())
    return accumulator


def _segment_map(train_dir, pattern):
    return _segment_metrics(train_dir, pattern).get()["segment_map"]


def test_the_step_counts_only_the_rated_pairs():
    model = registry.build_model(SETTINGS)
    optimizer = optimization.make_optimizer("sgd", 0.1)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    batch = {"video_matrix": rng.integers(0, 256, (2, 5, cli.RGB + cli.AUDIO)).astype(np.uint8),
             "num_frames": np.array([5, 3], np.int32), "labels": np.zeros((2, cli.CLASSES), np.float32),
             "label_weights": np.zeros((2, cli.CLASSES), np.float32)}
    batch["labels"][0, 3] = 1.0  # segment 0: class 3 rated present, class 4 rated absent; segment 1: class 9 absent
    batch["label_weights"][0, [3, 4]] = batch["label_weights"][1, 9] = 1.0
    p = model(batch)["predictions"].numpy()
    step = step_lib.TrainStep(model, losses.get_loss("CrossEntropyLoss"), optimizer, 2, regularization_penalty=0.0)
    loss = float(tf.function(step)(batch)["loss"])
    expected = (-math.log(p[0, 3] + 1e-5) - math.log(1 - p[0, 4] + 1e-5) - math.log(1 - p[1, 9] + 1e-5)) / 2
    assert loss == pytest.approx(expected, rel=1e-5)


def test_fine_tuning_on_segments_beats_the_video_model_and_resumes_its_own_steps(data, tmp_path, capsys):
    video = tmp_path / "video"
    trainer.train(SETTINGS, _options(data, video, num_epochs=8))
    tuned = tmp_path / "tuned"
    first = trainer.train(SETTINGS, _options(data, tuned, segment_labels=True, init_from=str(video), max_steps=40,
                                             freeze="pooling", base_learning_rate=0.01))
    assert f"initialised from {train_dir_lib.latest_checkpoint(str(video))}" in capsys.readouterr().out
    before, after = _segment_map(video, data["validate"]), _segment_map(tuned, data["validate"])
    assert after > before + 0.03, (before, after)  # measured: 0.745 -> 0.793
    # A fine-tuning run resumes from its own checkpoint (its own step count), not from --init_from again.
    again = trainer.train(SETTINGS, _options(data, tuned, segment_labels=True, init_from=str(video), max_steps=45,
                                             freeze="pooling", base_learning_rate=0.01))
    out = capsys.readouterr().out
    assert f"resumed from {first['checkpoint']} at step 40" in out and "initialised from" not in out
    assert again["step"] == 45


def test_init_from_and_freeze(data, tmp_path):
    dbof = {**SETTINGS, "model": "DbofModel", "dbof_cluster_size": 8, "dbof_hidden_size": 4, "iterations": 5}
    source = tmp_path / "source"
    trainer.train(dbof, _options(data, source, max_steps=1))
    trainer.train(dbof, _options(data, tmp_path / "frozen", segment_labels=True, init_from=str(source), max_steps=2,
                                 freeze="pooling"))
    (start, _, _), (end, _, _) = (train_dir_lib.load_trained_model(str(tmp_path / d)) for d in ("source", "frozen"))
    for name in ("pooling", "classifier"):
        pairs = [(a.numpy(), b.numpy()) for a, b in zip(getattr(start, name).weights, getattr(end, name).weights)]
        changed = [not np.array_equal(a, b) for a, b in pairs]
        assert any(changed) == (name == "classifier"), name  # the frozen g kept the weights it started from


def test_init_from_needs_the_same_model_and_writes_nothing(data, tmp_path):
    source = tmp_path / "source"
    trainer.train(SETTINGS, _options(data, source, max_steps=1))
    other = {**SETTINGS, "moe_num_mixtures": 4, "label_loss": "HingeLoss"}  # the loss may differ, not the model
    with pytest.raises(train_dir_lib.TrainDirError, match=r"other settings than this run's, first moe_num_mixtures: "
                                                          r"2 there, 4 here"):
        trainer.train(other, _options(data, tmp_path / "new", init_from=str(source), max_steps=1))
    with pytest.raises(trainer.TrainingError, match="--freeze pooling: this model has no pooling layer"):
        trainer.train({**SETTINGS, "model": "MoeModel", "frame_features": False,
                       "feature_names": "mean_rgb,mean_audio"},
                      _options({"train": cli.write_data(tmp_path / "v")}, tmp_path / "new", freeze="pooling"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source", "v"]


def test_fine_tuning_flags_take_the_source_model_and_it_writes_the_2019_csv(data, tmp_path):
    source = tmp_path / "source"
    trainer.train(SETTINGS, _options(data, source, max_steps=2))
    values = flags.FlagValues()  # what train.py parses
    yt8m_flags.define_train_flags(values)
    tuned = str(tmp_path / "tuned")
    values(["train.py", "--preset=segments/finetune", f"--init_from={source}", "--max_steps=2", "--batch_size=32",
            f"--train_data_pattern={data['train']}", f"--train_dir={tuned}", "--quiet"])
    settings, options = yt8m_flags.training_run(values)
    assert settings == train_dir_lib.read_settings(str(source))  # the model came along with --init_from
    assert options.segment_labels and options.base_learning_rate == 2e-5 and options.batch_size == 32
    assert trainer.train(settings, options)["step"] == 2
    # eval.py --segment_labels: MAP@100K and the per-class segment APs it averages.
    report, metrics_file = tmp_path / "aps.csv", tmp_path / "m.json"
    vocabulary = tmp_path / "vocabulary.csv"  # the official columns, rows out of Index order as in the real file
    vocabulary.write_text("Index,TrainVideoCount,Name,Vertical1\n" + "".join(
        f"{i},{100 - i},class {i},Arts\n" for i in reversed(range(cli.CLASSES))))
    cli.run("eval.py", f"--train_dir={tuned}", f"--eval_data_pattern={data['validate']}", "--segment_labels",
            "--run_once", f"--class_report={report}", f"--output_metrics={metrics_file}",
            f"--vocabulary_file={vocabulary}")
    expected = _segment_metrics(tuned, data["validate"])
    assert json.loads(metrics_file.read_text())["segment_map"] == pytest.approx(expected.get()["segment_map"],
                                                                                 rel=1e-6)
    rows = report.read_text().splitlines()
    assert rows[0] == "class,ap,positives,TrainVideoCount,Name" and len(rows) == cli.CLASSES + 1
    assert [r.split(",", 1)[0] + "," + r.rsplit(",", 2)[-2] for r in rows[1:3]] == ["0,100", "1,99"]
    assert rows[2].endswith(",class 1")
    aps = np.array([float(r.split(",")[1]) if r.split(",")[1] else np.nan for r in rows[1:]])
    np.testing.assert_allclose(aps, expected.class_average_precisions(), rtol=1e-6)
    whitelist = tmp_path / "segment_label_ids.csv"
    whitelist.write_text("Index\n1\n4\n7\n12\n")
    out = tmp_path / "segments.csv"
    run_inference(tuned, data["validate"], str(out), top_k=2, segment_labels=True,
                            segment_label_ids_file=str(whitelist), segment_max_pred=50)
    lines = out.read_text().splitlines()
    ids = {v.decode() for b in registry.make_reader(SETTINGS).dataset(data["validate"], 96) for v in
           b["video_ids"].numpy()}
    assert lines[0] == "Class,Segments" and len(lines) > 1
    for line in lines[1:]:  # Class,<video id>:<start frame> ... (Kaggle 2019)
        class_id, segments = line.split(",")
        assert int(class_id) in (1, 4, 7, 12)
        names = segments.split(" ")
        assert 0 < len(names) <= 50 and len(set(names)) == len(names)
        for name in names:
            video_id, start = name.split(":")
            assert video_id in ids and int(start) % 5 == 0
