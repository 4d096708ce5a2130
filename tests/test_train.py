"""train.py / eval.py through the command line: training, resume, faults, strategies, XLA."""

import concurrent.futures
import json
import os
import socket

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags

import readers
from tests import cli_testing as cli
from yt8m_tf import flags as yt8m_flags, metrics as metrics_lib, registry
from yt8m_tf.training import train_dir as train_dir_lib, trainer
from yt8m_tf.training.trainer import weights_fingerprint

TINY_MOE = ["--model=MoeModel", "--moe_num_mixtures=2", "--batch_size=16", "--quiet", "--log_steps=5",
            "--base_learning_rate=0.01"]


@pytest.fixture(scope="module")
def video_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    return cli.write_data(root), cli.write_data(root, prefix="validate", shards=1, seed=7)


def _steps(train_dir):
    if not os.path.isdir(train_dir):
        return []
    return sorted(int(p.rsplit("-", 1)[1].split(".")[0]) for p in os.listdir(train_dir) if p.endswith(".index"))


def test_train_eval_resume(video_data, tmp_path):
    train, validate = video_data
    train_dir = str(tmp_path / "run")
    args = ["--train_data_pattern=" + train, "--train_dir=" + train_dir, *cli.VIDEO_FLAGS, *TINY_MOE,
            "--checkpoint_steps=10"]
    first = cli.run("train.py", *args, "--max_steps=20")
    assert "trained to step 20" in first.stdout
    assert _steps(train_dir) == [10, 20]
    settings = json.load(open(os.path.join(train_dir, "model_flags.json")))
    assert settings["model"] == "MoeModel" and settings["num_classes"] == cli.CLASSES
    # Resume: the step count continues from the latest checkpoint.
    second = cli.run("train.py", *args, "--max_steps=30")
    assert "resumed from" in second.stdout and "model.ckpt-20" in second.stdout
    assert "trained to step 30" in second.stdout
    # Evaluation writes the starter code's metrics.
    metrics_file = str(tmp_path / "m.json")
    cli.run("eval.py", "--eval_data_pattern=" + validate, "--train_dir=" + train_dir, "--run_once",
            "--output_metrics=" + metrics_file)
    metrics = json.load(open(metrics_file))
    assert set(metrics) == {"gap", "map", "hit_at_one", "perr", "loss", "num_examples", "global_step"}
    assert metrics["num_examples"] == 32 and metrics["global_step"] == 30
    assert metrics["gap"] == pytest.approx(cli.gap_by_hand(*cli.predictions_and_labels(train_dir, validate)), abs=1e-5)
    # Summaries for TensorBoard.
    assert any(name.startswith("events") for name in os.listdir(os.path.join(train_dir, "train")))


def test_incompatible_train_dir_and_start_new_model(video_data, tmp_path):
    """In process (train.py reports TrainDirError as one line, like every other error of test_bad_flags...)."""
    train, _ = video_data
    settings = yt8m_flags.default_model_settings(model="MoeModel", feature_names="mean_rgb,mean_audio",
                                                 feature_sizes=f"{cli.RGB},{cli.AUDIO}", num_classes=cli.CLASSES)
    options = trainer.TrainOptions(train_data_pattern=train, train_dir=str(tmp_path / "run"), batch_size=16,
                                   max_steps=2, progress=False)
    trainer.train(settings, options)
    # A model_flags.json written before later settings existed resumes through train.py's flags: the model comes
    # from --train_dir, its missing settings at what it was trained with (registry.LATER_DEFAULTS).
    path = os.path.join(options.train_dir, "model_flags.json")
    old = {k: v for k, v in json.load(open(path)).items() if k not in registry.LATER_DEFAULTS}
    json.dump(old, open(path, "w"))
    values = absl_flags.FlagValues()
    yt8m_flags.define_train_flags(values)
    values(["train.py", f"--train_data_pattern={train}", f"--train_dir={options.train_dir}", "--batch_size=16",
            "--max_steps=3", "--quiet"])
    assert trainer.train(*yt8m_flags.training_run(values))["step"] == 3
    other = {**settings, "moe_num_mixtures": 4}
    with pytest.raises(train_dir_lib.TrainDirError, match=r"moe_num_mixtures: 2 -> 4\); use another --train_dir or "
                                                          r"--start_new_model"):
        trainer.train(other, options)
    fresh = trainer.train(other, trainer.TrainOptions(**{**vars(options), "start_new_model": True}))
    assert fresh["step"] == 2
    assert any(p.startswith("run.replaced-") for p in os.listdir(tmp_path))  # nothing the user trained is deleted

def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(args, train_dirs, env=None):
    """Two local workers of one cluster (worker 0 is the chief), each with its own --train_dir."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    return [cli.start("train.py", *args, f"--train_dir={train_dir}", "--strategy=multi_worker",
                      env={**(env or {}), "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                   "task": {"type": "worker", "index": i}})})
            for i, train_dir in enumerate(train_dirs)]


def test_multi_worker_two_local_workers(video_data, tmp_path):
    train, _ = video_data
    train_dir = str(tmp_path / "run")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # label_beta needs the label correlation: the chief computes it into --train_dir, the other worker reads it.
    args = ["--train_data_pattern=" + train, *cli.VIDEO_FLAGS, *TINY_MOE, "--max_steps=8", "--checkpoint_steps=4",
            "--label_beta=0.01"]
    workers = _workers(args, [train_dir, train_dir], env={"TMPDIR": str(scratch)})
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    weights = [cli.final_weights(out) for out in outputs]
    assert weights[0] == pytest.approx(weights[1], rel=1e-6)
    assert _steps(train_dir) == [4, 8]  # only the chief writes into train_dir
    assert ["label statistics: computed" in out for out in outputs] == [True, False]
    assert not os.listdir(scratch)  # the other worker's scratch checkpoints are gone


def test_multi_worker_without_a_shared_train_dir_stops_every_worker(video_data, tmp_path):
    train, _ = video_data
    args = ["--train_data_pattern=" + train, *cli.VIDEO_FLAGS, *TINY_MOE, "--max_steps=2"]
    workers = _workers(args, [tmp_path / "chief", tmp_path / "other"])
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [2, 2], outputs
    assert "train.py: error: 1 other worker(s) do not see the chief's --train_dir" in outputs[0], outputs[0][-2000:]
    assert "train.py: error: worker 1 does not see the chief's --train_dir" in outputs[1], outputs[1][-2000:]
    assert not any("Traceback" in out for out in outputs)


def test_jit_compile_frame_level_step(tmp_path):
    data = cli.write_data(tmp_path, level="frame", shards=1, videos=16)
    result = cli.run("train.py", "--train_data_pattern=" + data, "--train_dir=" + str(tmp_path / "run"),
                     *cli.FRAME_FLAGS, "--model=LstmMOModel", "--lstm_cells=8", "--lstm_layers=1",
                     "--batch_size=8", "--max_steps=3", "--jit_compile", "--quiet",
                     "--label_loss=PseudoHuberLoss")
    assert "trained to step 3" in result.stdout
    # The checkpoint holds every weight (LSTM layers included): reloading gives the trained weights.
    model, _, step = train_dir_lib.load_trained_model(str(tmp_path / "run"))
    assert step == 3 and weights_fingerprint(model) == pytest.approx(cli.final_weights(result.stdout), rel=1e-9)


def test_eval_gap_equals_gap_of_the_written_csv(video_data, tmp_path):
    train, validate = video_data
    train_dir = str(tmp_path / "run")
    cli.run("train.py", "--train_data_pattern=" + train, "--train_dir=" + train_dir, *cli.VIDEO_FLAGS, *TINY_MOE,
            "--max_steps=15", "--mixed_precision=mixed_bfloat16")
    metrics_file, csv_file = str(tmp_path / "m.json"), str(tmp_path / "p.csv")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # both at once: they mostly wait for imports
        list(pool.map(lambda args: cli.run(*args), [
            ("eval.py", "--eval_data_pattern=" + validate, "--train_dir=" + train_dir, "--run_once",
             "--output_metrics=" + metrics_file),
            ("inference.py", "--input_data_pattern=" + validate, "--train_dir=" + train_dir,
             "--output_file=" + csv_file)]))
    lines = open(csv_file).read().splitlines()
    assert lines[0] == "VideoId,LabelConfidencePairs" and len(lines) == 33
    reader = readers.VideoLevelReader("mean_rgb,mean_audio", f"{cli.RGB},{cli.AUDIO}", cli.CLASSES)
    labels = {vid: row for batch in reader.dataset(validate, 64)
              for vid, row in zip(batch["video_ids"].numpy().astype(str), batch["labels"].numpy())}
    predictions = np.zeros((32, cli.CLASSES))
    truth = np.zeros((32, cli.CLASSES))
    for row, line in enumerate(lines[1:]):
        video_id, pairs = line.split(",")
        values = pairs.split()
        assert len(values) == 40  # top_k = 20 pairs
        for label, score in zip(values[::2], values[1::2]):
            predictions[row, int(label)] = float(score)
        truth[row] = labels[video_id]
    gap = metrics_lib.calculate_gap(predictions, truth, top_k=20)
    assert gap == pytest.approx(json.load(open(metrics_file))["gap"], abs=2e-3)  # CSV scores carry 6 digits (%g)


def test_bad_flags_are_one_line_errors(video_data, tmp_path):
    train, _ = video_data
    cases = {
        ("--train_data_pattern=" + str(tmp_path / "none*.tfrecord"),): "no files match",
        ("--train_data_pattern=" + train, "--model=NoSuchModel"): "unknown --model 'NoSuchModel'; valid:",
        ("--train_data_pattern=" + train, "--preset=nope"): "unknown --preset 'nope'; valid:",
        ("--train_data_pattern=" + train, "--num_classes=3"): "--num_classes 3",
        ("--train_data_pattern=" + train, "--model=LstmModel"): "pass --frame_features",
        ("--train_data_pattern=" + train, "--frame_features", "--feature_names=rgb,audio",
         "--model=LstmModel"): "drop --frame_features",
        ("--train_data_pattern=" + train, "--tpu=my-node"): "is a local path, but --tpu=my-node is a TPU node",
    }
    runs = [[f"--train_dir={tmp_path}/run{index}", *cli.VIDEO_FLAGS, *TINY_MOE, "--max_steps=1", *extra]
            for index, extra in enumerate(cases)] + [["--train_data_pattern=" + train, "--batch_size=0"]]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two at a time: the runs mostly wait for imports
        results = list(pool.map(lambda args: cli.run("train.py", *args, check=False), runs))
    for expected, result in zip([*cases.values(), "batch_size"], results):
        assert result.returncode != 0 and expected in result.stderr, (expected, result.stderr[-2000:])
        assert "Traceback" not in result.stderr


def test_list_presets_and_models():
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        presets, models = (r.stdout.split() for r in pool.map(lambda flag: cli.run("train.py", flag),
                                                              ["--list_presets", "--list_models"]))
    assert "final/lstm-m-o-moe2-huber" in presets and "table1/cnn-1024" in presets
    assert len([p for p in presets if p.startswith("table3/")]) == 6
    assert len([p for p in presets if p.startswith("table4/huber-")]) == 4
    assert {"willow/netvlad-gated", "nextvlad/single", "nextvlad/mix3", "garden/dbof"} <= set(presets)
    assert {"LogisticModel", "MoeModel", "FrameLevelLogisticModel", "DbofModel", "LstmModel"} <= set(models)
    assert {"NetVLADModel", "NetRVLADModel", "NetFVModel", "SoftDBoWModel", "NeXtVLADModel", "MixNeXtVLADModel",
            "GruModel", "BiGruModel", "BiLstmModel"} <= set(models)
