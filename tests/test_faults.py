"""Faults and bad input (issue #7): every case ends in one line naming the file or flag with a non-zero exit and
nothing written, or in a defined, counted skip; killed runs lose no checkpoint. docs/RELIABILITY.md lists every case
with its test (several live in test_train.py, test_inference.py and test_readers.py)."""

import concurrent.futures
import errno
import glob
import json
import os
import random
import re
import signal
import subprocess
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from yt8m_tf import inference
import readers
from tests import cli_testing as cli
from tests.test_train import TINY_MOE, _free_ports, _steps
from yt8m_tf import atomic, cli as cli_lib, flags as flags_lib, registry, synthetic
from yt8m_tf.training import train_dir as train_dir_lib, trainer

REPO = cli.REPO
SETTINGS = flags_lib.default_model_settings(feature_names="mean_rgb,mean_audio", feature_sizes=f"{cli.RGB},{cli.AUDIO}",
                                            num_classes=cli.CLASSES, model="MoeModel", moe_num_mixtures=2)


def write_train_dir(path, settings=SETTINGS, step=5, checkpoint=True, flags_settings=None):
    """A --train_dir as train.py leaves it, without running train.py. `flags_settings`: a model_flags.json that
    differs from the checkpoint's model (a directory written by an incompatible model setting)."""
    os.makedirs(path, exist_ok=True)
    if checkpoint:
        keras.utils.set_random_seed(0)
        model = registry.build_model(settings)
        tf.train.CheckpointManager(train_dir_lib.make_checkpoint(model), str(path), max_to_keep=1,
                                   checkpoint_name=train_dir_lib.CHECKPOINT_NAME).save(checkpoint_number=step)
    train_dir_lib.write_json(train_dir_lib.settings_path(str(path)), flags_settings or settings)
    return str(path)


def cut(source, target, keep_records, extra_bytes):
    """Copies the first `keep_records` records of a TFRecord file plus `extra_bytes` of the next one."""
    data = open(source, "rb").read()
    offset = 0
    for _ in range(keep_records):
        offset += 16 + int.from_bytes(data[offset:offset + 8], "little")
    open(target, "wb").write(data[:offset + extra_bytes])
    return str(target)


def error_line(result, program):
    """The one `program: error:` line of a failed run (exit 2, no Python trace)."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-3000:])
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"{program}: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    train = cli.write_data(root / "video")
    synthetic.write_dataset(str(root / "test"), level="video", num_shards=1, videos_per_shard=12,
                            num_classes=cli.CLASSES, rgb_size=cli.RGB, audio_size=cli.AUDIO, prefix="test",
                            with_labels=False)
    first = sorted(glob.glob(train))[0]
    os.makedirs(root / "cut")
    return {"root": root, "train": train, "first": first, "test": str(root / "test" / "test*.tfrecord"),
            # cut 10 bytes into record 5's 12-byte header: TensorFlow reads 5 records and reports no error
            "header_cut": cut(first, root / "cut" / "header_cut.tfrecord", 5, 10),
            "model": write_train_dir(root / "model"),
            "no_checkpoint": write_train_dir(root / "no_checkpoint", checkpoint=False),
            "incompatible": write_train_dir(root / "incompatible", settings=dict(SETTINGS, moe_num_mixtures=4),
                                            flags_settings=SETTINGS)}


# ---------------------------------------------------------------------------------------------------------------
# Bad input through the three programs: one line, exit 2, nothing written.
# ---------------------------------------------------------------------------------------------------------------

def test_programs_report_bad_input_in_one_line_and_write_nothing(data, tmp_path):
    root = data["root"]
    (tmp_path / "a_file").write_text("")
    under_a_file = str(tmp_path / "a_file" / "sub")  # fails even for root (chmod does not)
    train_args = ["--model=MoeModel", "--moe_num_mixtures=2", "--batch_size=16", "--quiet", "--max_steps=2",
                  *cli.VIDEO_FLAGS]
    eval_args = ["--run_once", f"--eval_data_pattern={data['train']}"]
    cases = [
        ("train.py", [f"--train_data_pattern={data['train']}", f"--train_dir={data['incompatible']}", *train_args],
         f"checkpoint '{data['incompatible']}/model.ckpt-5' cannot be restored", None),
        ("train.py", [f"--train_data_pattern={data['train']}", f"--train_dir={tmp_path}/t", *train_args,
                      "--base_learning_rate=-0.1"], "flag --base_learning_rate=-0.1: -0.1 is not a non-negative",
         tmp_path / "t"),
        ("train.py", [f"--train_data_pattern={data['train']}", f"--train_dir={tmp_path}/t2", *train_args,
                      "--label_loss=HingeLoss", "--focal_gamma_neg=1"],
         "--focal_gamma_neg applies to CrossEntropyLoss, not HingeLoss", tmp_path / "t2"),
        ("train.py", [f"--train_data_pattern={data['train']}", f"--train_dir={tmp_path}/t3", *train_args,
                      "--model=MlpModel", "--knn_memory_size=64", "--knn_weight=0.9", "--knn_output_weight=0.2"],
         "--knn_weight 0.9 + --knn_output_weight 0.2 is more than 1", tmp_path / "t3"),
        ("eval.py", [f"--eval_data_pattern={data['test']}", f"--train_dir={data['model']}", "--run_once"],
         "has no labels", None),
        ("eval.py", [*eval_args, f"--train_dir={data['model']}", "--top_k=21"],
         "--top_k 21 is larger than the model's 20 classes", None),
        ("eval.py", [*eval_args, f"--train_dir={data['no_checkpoint']}"], "has no checkpoint yet", None),
        ("eval.py", [*eval_args, f"--train_dir={data['incompatible']}", f"--output_metrics={tmp_path}/m1.json"],
         "does not fit the model in model_flags.json", tmp_path / "m1.json"),
        ("eval.py", [*eval_args, f"--train_dir={data['model']}", f"--output_metrics={under_a_file}.json"],
         f"--output_metrics '{under_a_file}.json': its directory '{tmp_path}/a_file' does not exist", None),
        ("eval.py", [*eval_args, f"--train_dir={data['model']}", f"--class_report={tmp_path}/aps.csv",
                     f"--vocabulary_file={tmp_path}/vocabulary.csv"],
         f"vocabulary file '{tmp_path}/vocabulary.csv' not found", tmp_path / "aps.csv"),
        ("eval.py", [*eval_args, f"--train_dir={data['model']}", f"--vocabulary_file={tmp_path}/vocabulary.csv"],
         "--vocabulary_file names the classes of --class_report", None),
        ("inference.py", [f"--input_data_pattern={data['test']}", f"--train_dir={data['model']}",
                          f"--output_file={tmp_path}/p.csv", "--no_such_flag=1"],
         "Unknown command line flag 'no_such_flag'", tmp_path / "p.csv"),
    ]
    before = sorted(os.listdir(root / "model"))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two at a time: the runs mostly wait for imports
        results = list(pool.map(lambda case: cli.run(case[0], *case[1], check=False), cases))
    for (program, args, expected, never_written), result in zip(cases, results):
        line = error_line(result, program)
        assert expected in line, (program, args, line)
        if never_written is not None:
            assert not os.path.exists(never_written), (program, args)
    assert sorted(os.listdir(root / "model")) == before  # failed evaluations wrote nothing into --train_dir
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_train_checks_input_and_train_dir_before_writing(data, tmp_path, monkeypatch):
    """In process (train.py reports these through yt8m_tf.cli, as the cases above show for its other errors)."""
    (tmp_path / "a_file").write_text("")
    memory = dict(model="MlpModel", mlp_hidden_sizes="4", knn_memory_size=40, knn_k=2)  # the data has 64 videos
    cases = [
        (dict(settings=memory), "--knn_memory_size 40 is smaller than the 64 training videos"),
        (dict(train_data_pattern=data["test"]), "--train_data_pattern '.*test\\*.tfrecord' has no labels"),
        (dict(train_data_pattern=data["train"], eval_data_pattern=data["test"]), "--eval_data_pattern .* no labels"),
        (dict(train_data_pattern=data["header_cut"]), "header_cut.tfrecord' is truncated or corrupt"),
        (dict(train_data_pattern=str(tmp_path / "none*.tfrecord")), "no files match"),
        (dict(train_dir=str(tmp_path / "a_file" / "run")),
         "cannot write to --train_dir '.*a_file/run': .*a_file is not a directory"),
        (dict(train_dir="/proc/yt8m_run"), "cannot write to --train_dir '/proc/yt8m_run'"),
    ]
    for overrides, message in cases:
        settings = {**SETTINGS, **overrides.pop("settings", {})}
        options = trainer.TrainOptions(**dict(dict(train_data_pattern=data["train"], train_dir=str(tmp_path / "run"),
                                                   batch_size=16, max_steps=2, progress=False), **overrides))
        with pytest.raises((readers.ReaderError, trainer.TrainingError, train_dir_lib.TrainDirError,
                            registry.ModelSettingsError), match=message) as error:
            trainer.train(settings, options)
        assert "\n" not in str(error.value)
    monkeypatch.setattr(readers.files, "count_records", lambda files: None)  # as for gs:// data
    with pytest.raises(trainer.TrainingError, match="--learning_rate_decay_epochs needs the number of training"):
        trainer.train(SETTINGS, trainer.TrainOptions(train_data_pattern=data["train"], train_dir=str(tmp_path / "run"),
                                                     learning_rate_decay_epochs=1.0, max_steps=2))
    assert sorted(os.listdir(tmp_path)) == ["a_file"]  # nothing written


def test_eval_of_a_train_dir_it_cannot_write_still_evaluates(data, tmp_path):
    """TensorBoard summaries go to train_dir/eval; when that cannot be written the metrics are still computed,
    printed and written to --output_metrics, with one warning."""
    train_dir = write_train_dir(tmp_path / "model")
    (tmp_path / "model" / "eval").write_text("a file where the summary directory would go")
    metrics = tmp_path / "m.json"
    result = cli.run("eval.py", f"--eval_data_pattern={data['train']}", f"--train_dir={train_dir}", "--run_once",
                     f"--output_metrics={metrics}")
    assert "warning: no TensorBoard summaries: cannot write to" in result.stdout
    assert json.loads(metrics.read_text())["num_examples"] == 64


def test_inference_bad_model_dirs_and_outputs_in_process(data, tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    base = dict(train_dir=data["model"], input_data_pattern=data["test"], output_file=str(out))
    cases = [
        (dict(train_dir=data["no_checkpoint"]), "has no checkpoint yet"),
        (dict(train_dir=data["incompatible"]), "does not fit the model in model_flags.json"),
        (dict(output_file="/proc/yt8m/out.csv"), "does not exist"),
        (dict(output_file="/proc/out.csv"), "cannot write output file '/proc/out.csv'"),
        (dict(top_k=21), "--top_k 21 is larger than the model's 20 classes"),
        (dict(input_data_pattern=data["header_cut"]), "is truncated or corrupt"),
    ]
    for overrides, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)) as error:
            inference.run_inference(**dict(base, **overrides))
        assert "\n" not in str(error.value)
    assert out.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["out.csv"]


def test_inference_disk_full_keeps_the_old_file(data, tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    out.write_text("old\n")

    class FullDisk:
        def __init__(self, *args, **kwargs):
            self.real = open(*args, **kwargs)

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            self.real.close()

    monkeypatch.setattr(atomic, "open", FullDisk, raising=False)
    with pytest.raises(ValueError, match=f"cannot write output file '{re.escape(str(out))}': No space left"):
        inference.run_inference(data["model"], data["test"], str(out))
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["out.csv"]  # temporary file removed


# ---------------------------------------------------------------------------------------------------------------
# A file cut inside a record header: TensorFlow's silent loss, detected up front; the opt-in skip counts it.
# ---------------------------------------------------------------------------------------------------------------

def test_file_cut_inside_a_record_header_is_detected_or_counted(data, tmp_path):
    path = data["header_cut"]
    assert sum(1 for _ in tf.data.TFRecordDataset(path)) == 5  # TensorFlow alone: no error, record 6 lost
    with pytest.raises(readers.ReaderError, match=f"'{re.escape(path)}' is truncated or corrupt: 10 byte"):
        readers.files.check_truncation([path])
    inside_data = cut(data["first"], tmp_path / "inside_data.tfrecord", 5, 40)
    with pytest.raises(readers.ReaderError, match="inside_data.tfrecord' is truncated or corrupt: 40 byte"):
        readers.files.check_truncation([data["first"], inside_data])
    readers.files.check_truncation(sorted(glob.glob(data["train"])))  # whole files pass
    # --skip_corrupt_records: the unreadable tail is skipped and counted (it used to end in an IndexError).
    out = tmp_path / "p.csv"
    stats = inference.run_inference(data["model"], path, str(out), skip_corrupt_records=True)
    assert stats["videos"] == 5 and len(out.read_text().splitlines()) == 6
    counter = readers.CorruptRecordCounter()
    assert sum(1 for _ in counter.dataset(path)) == 5
    assert counter.skipped == {path: 1} and counter.truncated == [path]


# ---------------------------------------------------------------------------------------------------------------
# Faults during training.
# ---------------------------------------------------------------------------------------------------------------

def _restore_every_checkpoint(train_dir, recorded_only=False):
    """The latest checkpoint (what a restart restores) is complete and every checkpoint restores; returns the
    steps. `recorded_only`: just after a kill, only the checkpoints the `checkpoint` file records (a kill inside a
    save can leave an unrecorded, half-written one newer than the latest; the restart removes it)."""
    indexed = {p[:-len(".index")] for p in glob.glob(os.path.join(train_dir, "model.ckpt-*.index"))}
    latest = tf.train.latest_checkpoint(train_dir)
    assert latest is None or latest in indexed, (latest, indexed)
    if recorded_only:
        state = tf.train.get_checkpoint_state(train_dir)
        indexed &= set(state.all_model_checkpoint_paths) if state else set()
    else:  # nothing newer than the latest
        assert all(train_dir_lib.checkpoint_step(p) <= train_dir_lib.checkpoint_step(latest) for p in indexed)
    for prefix in sorted(indexed):
        _, _, step = train_dir_lib.load_trained_model(train_dir, checkpoint=prefix)
        assert step == train_dir_lib.checkpoint_step(prefix)
    return sorted(train_dir_lib.checkpoint_step(p) for p in indexed)


def test_sigkill_at_random_points_then_resume_to_max_steps(data, tmp_path):
    """Killed 3 times at random moments (a checkpoint is written every step, so kills land inside saves too):
    each restart resumes from the latest checkpoint with the step count continuing, every checkpoint left
    restores, and the last run reaches --max_steps."""
    train_dir = str(tmp_path / "run")
    args = [f"--train_data_pattern={data['train']}", f"--train_dir={train_dir}", *cli.VIDEO_FLAGS, *TINY_MOE,
            "--checkpoint_steps=1", "--keep_checkpoints=3", "--log_steps=1"]
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    latest_step = 0
    for kill in range(3):
        process = cli.start("train.py", *args, "--max_steps=100000")
        try:
            resumed = None
            for line in process.stdout:  # wait for training to run, then kill at a random moment
                if line.startswith("resumed from"):
                    resumed = line
                if line.startswith("step "):
                    break
            time.sleep(rng.uniform(0.0, 0.6))
            assert process.poll() is None, f"train.py finished before kill {kill} (seed {seed})"
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
        if latest_step:
            assert resumed is not None and f"model.ckpt-{latest_step} at step {latest_step}" in resumed, (
                resumed, latest_step, seed)
        steps = _restore_every_checkpoint(train_dir, recorded_only=True)
        latest = tf.train.latest_checkpoint(train_dir)
        if latest is None:  # killed before the first checkpoint was complete: the next run starts over
            assert latest_step == 0 and not steps, (steps, seed)
            continue
        assert train_dir_lib.checkpoint_step(latest) >= latest_step, (latest, latest_step, seed)
        latest_step = train_dir_lib.checkpoint_step(latest)
    assert latest_step > 0, seed
    final = cli.run("train.py", *args, f"--max_steps={latest_step + 10}")
    assert f"resumed from {train_dir}/model.ckpt-{latest_step} at step {latest_step}" in final.stdout
    assert f"trained to step {latest_step + 10}" in final.stdout
    assert _restore_every_checkpoint(train_dir)[-1] == latest_step + 10
    assert not [n for n in os.listdir(train_dir) if n.endswith("_temp")]  # partial saves were cleaned up


def test_non_finite_loss_stops_at_its_step_and_keeps_the_last_finite_checkpoint(tmp_path):
    """Record 40 of 64 has NaN features: reading succeeds, the loss of step 3 (records 32-47) is NaN."""
    rng = np.random.default_rng(0)
    records = []
    for i in range(64):
        rgb = rng.normal(size=cli.RGB).astype(np.float32)
        if i == 40:
            rgb[2] = np.nan
        records.append(synthetic.video_example(f"v{i:02d}", [i % cli.CLASSES], rgb,
                                               rng.normal(size=cli.AUDIO)))
    path = str(tmp_path / "nan.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    train_dir = str(tmp_path / "run")
    result = cli.run("train.py", f"--train_data_pattern={path}", f"--train_dir={train_dir}", *cli.VIDEO_FLAGS,
                     *TINY_MOE, "--checkpoint_steps=1", "--max_steps=8", "--shuffle_buffer=1", "--num_readers=1",
                     "--deterministic", check=False)
    line = error_line(result, "train.py")
    assert "the loss became nan at step 3" in line and "model.ckpt-2" in line
    assert tf.train.latest_checkpoint(train_dir).endswith("model.ckpt-2") and _steps(train_dir) == [1, 2]
    model, _, _ = train_dir_lib.load_trained_model(train_dir)
    assert trainer.all_finite(model.weights)


def test_frame_videos_with_0_1_and_too_many_frames_train_with_finite_loss(tmp_path):
    rng = np.random.default_rng(1)
    path = str(tmp_path / "frames.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for i, count in enumerate([0, 1, 30, 5] * 4):  # --max_frames=12
            writer.write(synthetic.frame_example(f"f{i}", [i % cli.CLASSES],
                                                 rng.integers(0, 256, (count, cli.RGB), dtype=np.uint8),
                                                 rng.integers(0, 256, (count, cli.AUDIO), dtype=np.uint8)))
    result = cli.run("train.py", f"--train_data_pattern={path}", f"--train_dir={tmp_path}/run", *cli.FRAME_FLAGS,
                     "--model=LstmMOModel", "--lstm_cells=8", "--lstm_layers=1", "--batch_size=8", "--max_steps=4",
                     "--quiet", "--log_steps=1")
    assert "trained to step 4" in result.stdout
    losses = [float(m) for m in re.findall(r"^step \d+: loss (\S+)", result.stdout, re.M)]
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_checkpoint_write_failure_and_a_full_disk_stop_with_one_line(data, tmp_path, monkeypatch):
    options = trainer.TrainOptions(train_data_pattern=data["train"], train_dir=str(tmp_path / "run"), batch_size=16,
                                   max_steps=6, checkpoint_steps=2, progress=False, log_steps=100)
    real_save = tf.train.CheckpointManager.save
    calls = []

    def failing_save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise tf.errors.ResourceExhaustedError(None, None, f"{options.train_dir}/x; No space left on device")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", failing_save)
    with pytest.raises(trainer.TrainingError) as error:
        trainer.train(SETTINGS, options)
    assert str(error.value) == (f"cannot write the checkpoint of step 4 to '{options.train_dir}' (No space left on "
                                f"device); the latest complete checkpoint is {options.train_dir}/model.ckpt-2")
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    assert _restore_every_checkpoint(options.train_dir) == [2]

    # Not enough room for --keep_checkpoints checkpoints: known before the first step.
    monkeypatch.setattr(train_dir_lib.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=1000))
    fresh = trainer.TrainOptions(**dict(vars(options), train_dir=str(tmp_path / "fresh")))
    with pytest.raises(train_dir_lib.TrainDirError, match=r"has 0.0 MiB free but 5 checkpoints of .* need about"):
        trainer.train(SETTINGS, fresh)
    assert _steps(fresh.train_dir) == []


def test_multi_worker_worker_killed_then_both_restart_from_the_checkpoint(data, tmp_path):
    """Kill the chief of two local workers mid-run: the survivor stops (or is stopped: a hung collective is
    killed after a timeout); restarting both resumes from the latest checkpoint with equal weights."""
    train_dir = str(tmp_path / "run")

    def start(max_steps):
        ports = _free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        args = [f"--train_data_pattern={data['train']}", f"--train_dir={train_dir}", *cli.VIDEO_FLAGS, *TINY_MOE,
                f"--max_steps={max_steps}", "--checkpoint_steps=3", "--strategy=multi_worker"]
        return [cli.start("train.py", *args, env={"TF_CONFIG": json.dumps({"cluster": cluster,
                                                                          "task": {"type": "worker", "index": i}})})
                for i in range(2)]

    workers = start(100000)
    try:
        deadline = time.time() + 150
        while time.time() < deadline and len(_steps(train_dir)) < 2 and all(w.poll() is None for w in workers):
            time.sleep(0.2)
        assert len(_steps(train_dir)) >= 2, [w.poll() for w in workers]
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(30)
        try:
            survivor = workers[1].communicate(timeout=60)[0]
            assert workers[1].returncode != 0 and "Traceback" not in survivor, survivor[-3000:]
            assert "train.py: error: another worker was lost" in survivor, survivor[-3000:]
        except subprocess.TimeoutExpired:  # hung in a collective: what a cluster manager would do
            workers[1].kill()
            workers[1].communicate()
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate()
    latest = train_dir_lib.checkpoint_step(tf.train.latest_checkpoint(train_dir))
    _restore_every_checkpoint(train_dir, recorded_only=True)

    workers = start(latest + 4)
    try:
        outputs = [w.communicate(timeout=240)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert all(w.returncode == 0 for w in workers), [o[-3000:] for o in outputs]
    assert f"resumed from {train_dir}/model.ckpt-{latest} at step {latest}" in outputs[0]
    assert all(f"trained to step {latest + 4}" in out for out in outputs)
    weights = [cli.final_weights(out) for out in outputs]
    assert weights[0] == pytest.approx(weights[1], rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Errors from deep inside TensorFlow, and the security rules.
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("error, expected", [
    (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[4096,300,1152]\n  node"),
     "out of memory (OOM when allocating tensor with shape[4096,300,1152]); reduce --batch_size"),
    (tf.errors.UnavailableError(None, None, "Socket closed\nmore"), "a worker or device was lost"),
    (tf.errors.InternalError(None, None, "cuDNN failed\nstack"), "InternalError: cuDNN failed"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/x"), "No space left on device '/data/x'"),
])
def test_errors_from_deep_inside_are_one_line(error, expected, capsys, monkeypatch):
    monkeypatch.delenv("YT8M_DEBUG", raising=False)

    def main(argv):
        raise error

    with pytest.raises(SystemExit) as exit_info:
        cli_lib.guard(main)(["prog"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and ": error: " + expected in lines[0], lines
    monkeypatch.setenv("YT8M_DEBUG", "1")
    with pytest.raises(type(error)):  # YT8M_DEBUG=1 keeps the trace
        cli_lib.guard(main)(["prog"])


def test_no_pickle_eval_or_exec_in_the_package():
    sources = [os.path.join(REPO, name) for name in ("train.py", "eval.py", "inference.py", "demo.py")]
    for package in ("yt8m_tf", "readers"):
        sources += glob.glob(os.path.join(REPO, package, "**", "*.py"), recursive=True)
    forbidden = re.compile(r"\b(import pickle|from pickle|cPickle|dill|shelve|marshal|eval\(|exec\(|"
                           r"allow_pickle\s*=\s*True|safe_mode\s*=\s*False|yaml\.load\(|yaml\.unsafe_load)")
    found = []
    for path in sources:
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            if forbidden.search(line):
                found.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()}")
            if re.search(r"\bnp\.load\(", line) and "allow_pickle=False" not in line:
                found.append(f"{os.path.relpath(path, REPO)}:{number}: np.load without allow_pickle=False")
    assert len(sources) > 30 and not found, found
