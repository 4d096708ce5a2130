"""inference.py (yt8m_tf/inference/) and yt8m_tf/submission.py: CSV bytes, one row per video, ensembles, segment mode,
atomic output, exports and model archives (--input_model_tgz / --output_model_tgz)."""

import collections
import glob
import io
import os
import signal
import subprocess
import sys
import tarfile
import uuid

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import inference as inference_cli
from yt8m_tf import inference
from yt8m_tf import flags as flags_lib, registry, submission, synthetic
from yt8m_tf.training import export, options as options_lib, train_dir as train_dir_lib
from yt8m_tf.training.evaluation import model_inputs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


MODEL_DEFAULTS = flags_lib.default_model_settings()
NUM_CLASSES = 40
VIDEO_SETTINGS = {"feature_names": "mean_rgb,mean_audio", "feature_sizes": "8,4", "num_classes": NUM_CLASSES}
FRAME_SETTINGS = {"frame_features": True, "model": "FrameLevelLogisticModel", "feature_names": "rgb,audio",
                  "feature_sizes": "8,4", "num_classes": NUM_CLASSES, "max_frames": 40}


def make_train_dir(path, seed=0, step=7, **overrides):
    """A --train_dir as train.py leaves it (model_flags.json + model.ckpt-<step>), without running train.py."""
    settings = dict(MODEL_DEFAULTS, **overrides)
    keras.utils.set_random_seed(seed)
    model = registry.build_model(settings)
    # Spread the scores so top-k orders are far from ties.
    for variable in model.trainable_variables:
        variable.assign(variable * 3.0)
    manager = tf.train.CheckpointManager(train_dir_lib.make_checkpoint(model), str(path), max_to_keep=1,
                                         checkpoint_name=train_dir_lib.CHECKPOINT_NAME)
    manager.save(checkpoint_number=step)
    train_dir_lib.write_json(train_dir_lib.settings_path(str(path)), settings)
    return model, settings


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def predict_all(model, settings, pattern, batch_size=16):
    """Reference: the model's own reader (its max_frames, its features), predictions of every video."""
    reader = registry.make_reader(settings)
    predict = tf.function(lambda inputs: model(inputs, training=False)["predictions"])
    ids, predictions = [], []
    for batch in reader.dataset(pattern, batch_size):
        ids.extend(v.decode() for v in batch["video_ids"].numpy())
        predictions.append(predict(model_inputs(batch)).numpy())
    return ids, np.concatenate(predictions)


def reference_rows(ids, predictions, top_k):
    """The starter code's format_lines (top-k by descending score, one "%i %g" per pair); ties by lower class
    id, as tf.math.top_k breaks them (the starter code's argpartition leaves their order unspecified)."""
    lines = [submission.VIDEO_HEADER]
    for video_id, row in zip(ids, predictions):
        top = np.argsort(-row, kind="stable")[:top_k]
        line = sorted([(c, row[c]) for c in top], key=lambda p: -p[1])
        lines.append(video_id + "," + " ".join("%i %g" % (label, score) for label, score in line) + "\n")
    return "".join(lines)


def parse_video_csv(text):
    lines = text.splitlines()
    assert lines[0] == "VideoId,LabelConfidencePairs"
    rows = []
    for line in lines[1:]:
        video_id, pairs = line.split(",")
        values = pairs.split(" ")
        rows.append((video_id, [int(v) for v in values[0::2]], [float(v) for v in values[1::2]]))
    return rows


@pytest.fixture(scope="module")
def video_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    synthetic.write_dataset(str(root / "data"), level="video", num_shards=2, videos_per_shard=24,
                            num_classes=NUM_CLASSES, rgb_size=8, audio_size=4, prefix="test", with_labels=False,
                            min_frames=0, max_frames=12)
    model, settings = make_train_dir(root / "model_a", seed=1, **VIDEO_SETTINGS)
    return {"root": root, "pattern": str(root / "data" / "test*.tfrecord"), "model": model, "settings": settings,
            "train_dir": str(root / "model_a")}


@pytest.fixture(scope="module")
def frame_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("frame")
    synthetic.write_dataset(str(root / "data"), level="frame", num_shards=2, videos_per_shard=12,
                            num_classes=NUM_CLASSES, rgb_size=8, audio_size=4, prefix="test", with_labels=False,
                            min_frames=3, max_frames=60, zero_frame_videos=2)
    return {"root": root, "pattern": str(root / "data" / "test*.tfrecord")}


def test_flag_defaults_are_the_starter_codes():
    """The defaults users of google/youtube-8m rely on, as its train.py and inference.py define them."""
    starter_train = {"model": "LogisticModel", "frame_features": False, "label_loss": "CrossEntropyLoss",
                     "max_frames": 300, "batch_size": 1024, "base_learning_rate": 0.01, "learning_rate_decay": 0.95,
                     "learning_rate_decay_examples": 4000000, "num_epochs": 5, "export_model_steps": 1000,
                     "num_readers": 8, "optimizer": "AdamOptimizer", "clip_gradient_norm": 1.0,
                     "regularization_penalty": 1.0, "start_new_model": False}
    ours = {name: MODEL_DEFAULTS[name] if name in MODEL_DEFAULTS else options_lib.default(name)
            for name in starter_train}
    assert ours == starter_train
    # inference.py; deliberate differences: --batch_size 512 (8192), --segment_max_pred 100000 (25000 in the 2019
    # code), --segment_label_ids_file empty (a URL there: nothing is downloaded here).
    starter_inference = {"train_dir": "", "input_data_pattern": "", "input_model_tgz": "",
                         "untar_model_dir": "/tmp/yt8m-model", "segment_labels": False, "output_file": "",
                         "output_model_tgz": "", "top_k": 20, "num_readers": 1}
    values = flags.FlagValues()
    inference_cli.define_flags(values)
    values(["inference.py"])
    assert {name: values[name].value for name in starter_inference} == starter_inference


# ---------------------------------------------------------------------------------------------------------------
# submission.py
# ---------------------------------------------------------------------------------------------------------------

def test_format_video_rows_is_byte_identical_to_per_pair_formatting():
    rng = np.random.default_rng(0)
    batch, k = 300, 20
    special = np.array([1e-5, 0.5, 1.0, 0.0, 1e-45, 3.4e38, 1e-7, 0.1, 0.123456789, 0.9999999, 1e-4, 12345678.0],
                       np.float32)
    scores = np.concatenate([
        rng.random((batch // 3, k)), 10.0 ** rng.uniform(-40, 2, (batch // 3, k)),
        rng.choice(special, (batch - 2 * (batch // 3), k))]).astype(np.float32)
    scores[5, :4] = scores[5, 4]  # ties keep their given order in both
    labels = rng.integers(0, 4716, (batch, k)).astype(np.int32)
    ids = [f"id{i:05d}" for i in range(batch - 1)] + ["\u00e9t\u00e9"]
    fast = submission.format_video_rows(ids, labels, scores)
    expected = "".join(
        video_id + "," + " ".join("%i %g" % (label, score)
                                  for label, score in sorted(zip(labels[i], scores[i]), key=lambda p: -p[1])) + "\n"
        for i, video_id in enumerate(ids))
    assert fast == expected
    assert fast == submission.format_video_rows_naive(ids, labels, scores)
    assert submission.format_video_rows([b"x"], [[3, 1]], np.array([[0.25, 0.5]], np.float32)) == "x,1 0.5 3 0.25\n"
    assert submission.format_video_rows([], np.zeros((0, 5), int), np.zeros((0, 5))) == ""


def test_segment_top_k_keeps_each_class_best_in_bounded_memory():
    rng = np.random.default_rng(1)
    best = submission.SegmentTopK(max_per_class=7, min_buffer=50)
    everything = []
    for chunk in range(40):
        classes = rng.integers(0, 5, 30)
        scores = rng.choice(np.linspace(0, 1, 50), 30).astype(np.float32)  # many ties
        keys = np.arange(chunk * 30, chunk * 30 + 30)
        best.add(classes, scores, keys)
        everything.extend(zip(classes.tolist(), scores.tolist(), keys.tolist()))
        assert best._buffered <= max(50, 2 * 5 * 7) + 30
    results = list(best.results())
    assert [c for c, _, _ in results] == sorted({c for c, _, _ in everything})
    for class_id, keys, scores in results:
        expected = sorted([(-s, k) for c, s, k in everything if c == class_id])[:7]
        assert keys.tolist() == [k for _, k in expected]
        np.testing.assert_array_equal(scores, np.float32([-s for s, _ in expected]))


# ---------------------------------------------------------------------------------------------------------------
# inference.py, in process
# ---------------------------------------------------------------------------------------------------------------

def test_video_level_csv_matches_the_starter_code_bytes(video_data, tmp_path, capsys):
    out = str(tmp_path / "predictions.csv")
    stats = inference.run_inference(video_data["train_dir"], video_data["pattern"], out, top_k=20, batch_size=10)
    ids, predictions = predict_all(video_data["model"], video_data["settings"], video_data["pattern"], 10)
    assert read_csv(out) == reference_rows(ids, predictions, 20)
    assert stats["rows"] == stats["videos"] == 48 and stats["duplicates"] == 0
    printed = capsys.readouterr().out
    assert f"wrote 48 rows (48 videos) to '{out}'" in printed and "videos/s" in printed
    assert os.listdir(tmp_path) == ["predictions.csv"]


def test_duplicate_ids_warn_and_keep_every_row(video_data, tmp_path, capsys):
    out = str(tmp_path / "p.csv")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "again.tfrecord").write_bytes(open(sorted(glob.glob(video_data["pattern"]))[0], "rb").read())
    pattern = video_data["pattern"] + "," + str(copy / "again.tfrecord")
    stats = inference.run_inference(video_data["train_dir"], pattern, out, top_k=3, batch_size=7)
    rows = parse_video_csv(read_csv(out))
    assert len(rows) == 72 and stats["duplicates"] == 24
    counts = collections.Counter(r[0] for r in rows)
    assert sorted(counts.values()) == [1] * 24 + [2] * 24
    twice = sorted(r for r in rows if counts[r[0]] == 2)
    assert twice[0::2] == twice[1::2]  # both copies of a video got the same row
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "24 rows repeat a video id" in warnings[0]


def test_frame_level_ensemble_is_the_weighted_mean_and_keeps_zero_frame_videos(frame_data, tmp_path):
    # Model b reads fewer frames (its own truncation) and its features in another order.
    model_a, settings_a = make_train_dir(tmp_path / "a", seed=2, **FRAME_SETTINGS)
    model_b, settings_b = make_train_dir(tmp_path / "b", seed=3, **dict(FRAME_SETTINGS, max_frames=9,
                                                                        feature_names="audio,rgb",
                                                                        feature_sizes="4,8"))
    out = str(tmp_path / "ensemble.csv")
    stats = inference.run_inference(f"{tmp_path / 'a'},{tmp_path / 'b'}", frame_data["pattern"], out, top_k=5,
                                    batch_size=5, ensemble_weights="1,3")
    ids_a, pred_a = predict_all(model_a, settings_a, frame_data["pattern"])
    ids_b, pred_b = predict_all(model_b, settings_b, frame_data["pattern"])
    assert ids_a == ids_b and stats["videos"] == 24
    expected = 0.25 * pred_a + 0.75 * pred_b
    rows = parse_video_csv(read_csv(out))
    assert [r[0] for r in rows] == ids_a
    for (_, classes, scores), row in zip(rows, expected):
        order = np.argsort(-row, kind="stable")[:5]
        assert classes == order.tolist()
        np.testing.assert_allclose(scores, row[order], rtol=2e-6)
    # Zero-frame videos get rows too.
    num_frames = [int(b["num_frames"][i]) for b in registry.make_reader(settings_a).dataset(frame_data["pattern"], 64)
                  for i in range(len(b["num_frames"]))]
    assert num_frames.count(0) == 2
    # A single model's scores go through unchanged.
    single = str(tmp_path / "b.csv")
    inference.run_inference(str(tmp_path / "b"), frame_data["pattern"], single, top_k=5, batch_size=5)
    assert read_csv(single) == reference_rows(ids_b, pred_b, 5)


def test_segment_mode_writes_class_segments_rows(frame_data, tmp_path):
    model, settings = make_train_dir(tmp_path / "seg", seed=4, **dict(FRAME_SETTINGS, max_frames=60))
    whitelist = tmp_path / "segment_label_ids.csv"
    whitelist.write_text("Index\n3\n7\n8\n11\n20\n")
    out = str(tmp_path / "segments.csv")
    stats = inference.run_inference(str(tmp_path / "seg"), frame_data["pattern"], out, top_k=2, batch_size=4,
                                    segment_labels=True, segment_label_ids_file=str(whitelist), segment_max_pred=6)
    # Reference: whole videos, consecutive 5-frame segments (the last may be shorter), per segment the top-2
    # whitelisted classes, per class the 6 best segments.
    reader = registry.make_reader(settings)
    allowed = [3, 7, 8, 11, 20]
    entries, segments = [], 0
    for batch in reader.dataset(frame_data["pattern"], 64):
        for video_id, frames, count in zip(batch["video_ids"].numpy(), batch["video_matrix"].numpy(),
                                           batch["num_frames"].numpy()):
            for start in range(0, count, 5):
                seg = frames[start:start + 5][None]
                n = np.array([min(5, count - start)], np.int32)
                p = model({"video_matrix": seg, "num_frames": n}, training=False)["predictions"].numpy()[0]
                top = sorted(allowed, key=lambda c: -p[c])[:2]
                entries.extend((c, p[c], f"{video_id.decode()}:{start}") for c in top)
                segments += 1
    assert stats["segments"] == segments
    lines = read_csv(out).splitlines()
    assert lines[0] == "Class,Segments"
    written = {int(line.split(",")[0]): line.split(",")[1].split(" ") for line in lines[1:]}
    assert sorted(written) == sorted({c for c, _, _ in entries})
    for class_id, names in written.items():
        scored = sorted([(s, n) for c, s, n in entries if c == class_id], key=lambda e: -e[0])
        assert len(names) == min(6, len(scored))
        assert names == [n for _, n in scored[:6]]


def test_errors_are_one_line_and_write_nothing(video_data, frame_data, tmp_path):
    frame_dir = tmp_path / "frame_model"
    make_train_dir(frame_dir, seed=5, **FRAME_SETTINGS)
    out = tmp_path / "never.csv"
    cases = [
        (dict(train_dir=f"{video_data['train_dir']},{frame_dir}"), "mixes frame-level models"),
        (dict(ensemble_weights="1,2"), "--ensemble_weights has 2 values"),
        (dict(train_dir=str(tmp_path / "nothing")), "model_flags.json"),
        (dict(output_file=str(tmp_path / "no_dir" / "x.csv")), "does not exist"),
        (dict(input_data_pattern=str(tmp_path / "none*.tfrecord")), "no files match"),
        (dict(input_data_pattern=frame_data["pattern"]), "not found in"),
        (dict(segment_labels=True), "--segment_labels needs frame-level models"),
        (dict(train_dir=str(frame_dir), input_data_pattern=frame_data["pattern"], segment_labels=True,
              segment_label_ids_file="https://raw.githubusercontent.com/google/youtube-8m/master/"
                                     "segment_label_ids.csv"),
         "must be a local or gs:// path"),
    ]
    for overrides, message in cases:
        kwargs = dict(train_dir=video_data["train_dir"], input_data_pattern=video_data["pattern"],
                      output_file=str(out))
        kwargs.update(overrides)
        with pytest.raises(ValueError, match=message) as error:
            inference.run_inference(**kwargs)
        assert "\n" not in str(error.value)
    assert os.listdir(tmp_path) == ["frame_model"]


def test_corrupt_input_fails_naming_the_file_or_is_skipped_on_request(video_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    first, second = sorted(glob.glob(video_data["pattern"]))
    (data / "test0000.tfrecord").write_bytes(open(first, "rb").read())
    (data / "test0001.tfrecord").write_bytes(open(second, "rb").read()[:-100])  # truncated last record
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    pattern = str(data / "test*.tfrecord")
    with pytest.raises(ValueError, match="test0001.tfrecord") as error:
        inference.run_inference(video_data["train_dir"], pattern, str(out), batch_size=4)
    assert "--skip_corrupt_records" in str(error.value) and "\n" not in str(error.value)
    assert out.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["data", "out.csv"]
    stats = inference.run_inference(video_data["train_dir"], pattern, str(out), batch_size=4,
                                    skip_corrupt_records=True)
    assert stats["videos"] == 47 and len(parse_video_csv(read_csv(out))) == 47


def test_real_2017_test_files_give_one_row_per_video(real_data_dir, tmp_path):
    pattern = os.path.join(real_data_dir, "v1-video", "testa*.tfrecord")
    make_train_dir(tmp_path / "v1", seed=6, num_classes=4716)
    out = str(tmp_path / "kaggle.csv")
    stats = inference.run_inference(str(tmp_path / "v1"), pattern, out, batch_size=512)
    rows = parse_video_csv(read_csv(out))
    ids = [tf.train.Example.FromString(r.numpy()).features.feature["video_id"].bytes_list.value[0].decode()
           for r in tf.data.TFRecordDataset(sorted(glob.glob(pattern)))]
    assert stats["videos"] == len(rows) == len(ids) == 1709
    assert [r[0] for r in rows] == ids
    assert all(len(classes) == 20 and max(classes) < 4716 and scores == sorted(scores, reverse=True)
               for _, classes, scores in rows)


def test_exports_and_model_archives_give_the_same_rows(video_data, tmp_path):
    """The starter code's --output_model_tgz / --input_model_tgz round trip, and an export given as --train_dir
    (its archive on a remote file system: TensorFlow's ram://, reached like gs://): the same CSV bytes as the
    model's own predictions."""
    pattern = video_data["pattern"]
    expected = reference_rows(*predict_all(video_data["model"], video_data["settings"], pattern), 20)
    archive = str(tmp_path / "model.tgz")
    inference.run_inference(video_data["train_dir"], pattern, str(tmp_path / "a.csv"), output_model_tgz=archive)
    assert read_csv(tmp_path / "a.csv") == expected
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        state = tar.extractfile("checkpoint").read().decode()
    assert names == ["checkpoint", "model.ckpt-7.data-00000-of-00001", "model.ckpt-7.index", "model_flags.json"]
    assert state == 'model_checkpoint_path: "model.ckpt-7"\nall_model_checkpoint_paths: "model.ckpt-7"\n'
    untarred = tmp_path / "untarred"
    for again in range(2):  # a rerun into the same directory finds only the archive's own files there
        inference.run_inference("", pattern, str(tmp_path / "b.csv"), input_model_tgz=archive,
                                untar_model_dir=str(untarred))
        assert read_csv(tmp_path / "b.csv") == expected and sorted(os.listdir(untarred)) == names

    export_dir = export.export(video_data["model"], video_data["settings"], str(tmp_path / "run/export/step_7"))
    remote = f"ram://archives-{uuid.uuid4().hex[:8]}/model.tgz"
    inference.run_inference(export_dir, pattern, str(tmp_path / "c.csv"), output_model_tgz=remote)
    assert read_csv(tmp_path / "c.csv") == expected
    inference.run_inference("", pattern, str(tmp_path / "d.csv"), input_model_tgz=remote,
                            untar_model_dir=str(tmp_path / "untarred_export"))
    assert read_csv(tmp_path / "d.csv") == expected
    assert {"saved_model.pb", "variables", "model_flags.json"} <= set(os.listdir(tmp_path / "untarred_export"))
    # An export whose model_flags.json describes another model
    train_dir_lib.write_json(os.path.join(export_dir, "model_flags.json"), dict(video_data["settings"], num_classes=30))
    with pytest.raises(ValueError, match=f"^export '{export_dir}' does not fit the model in its model_flags.json "):
        inference.run_inference(export_dir, pattern, str(tmp_path / "e.csv"))
    assert not os.path.exists(tmp_path / "e.csv")


def _tgz(path, members):
    """A .tgz written by hand: {name: bytes, or None for a symbolic link to /etc/passwd}."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_model_archive_errors_are_one_line_and_write_nothing(video_data, tmp_path):
    model = {name: open(os.path.join(video_data["train_dir"], name), "rb").read()
             for name in os.listdir(video_data["train_dir"])}
    good = _tgz(tmp_path / "good.tgz", model)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "model.ckpt-99.index").write_text("another model")
    (tmp_path / "random.tgz").write_bytes(os.urandom(300))
    out, untar = tmp_path / "out.csv", str(tmp_path / "untar")
    cases = [
        (dict(input_model_tgz=good), "give --train_dir or --input_model_tgz, not both"),
        (dict(train_dir=f"{video_data['train_dir']},{video_data['train_dir']}", output_model_tgz=good),
         "--output_model_tgz archives one model, but --train_dir lists 2"),
        (dict(output_model_tgz=str(tmp_path / "no_dir" / "m.tgz")),
         f"--output_model_tgz '{tmp_path}/no_dir/m.tgz': its directory '{tmp_path}/no_dir' does not exist"),
        (dict(train_dir="", input_model_tgz=str(tmp_path / "missing.tgz")),
         f"--input_model_tgz '{tmp_path}/missing.tgz' does not exist"),
        (dict(train_dir="", input_model_tgz=str(tmp_path / "random.tgz")),
         f"--input_model_tgz '{tmp_path}/random.tgz' is not a readable .tgz archive"),
        (dict(train_dir="", input_model_tgz=_tgz(tmp_path / "up.tgz", {**model, "../evil": b"x"})),
         f"--input_model_tgz '{tmp_path}/up.tgz' holds '../evil', which is not a plain file or folder inside"),
        (dict(train_dir="", input_model_tgz=_tgz(tmp_path / "link.tgz", {"model_flags.json": b"{}", "ln": None})),
         f"--input_model_tgz '{tmp_path}/link.tgz' holds 'ln', which is not a plain file or folder inside"),
        (dict(train_dir="", input_model_tgz=_tgz(tmp_path / "bare.tgz", {"checkpoint": b""})),
         f"--input_model_tgz '{tmp_path}/bare.tgz' holds no model_flags.json: it is not a model archive"),
        (dict(train_dir="", input_model_tgz=good, untar_model_dir=str(occupied)),
         f"--untar_model_dir '{occupied}' holds 1 file(s) that are not in --input_model_tgz (model.ckpt-99.index)"),
    ]
    before = sorted(os.listdir(tmp_path))
    for overrides, message in cases:
        kwargs = dict(train_dir=video_data["train_dir"], input_data_pattern=video_data["pattern"],
                      output_file=str(out), untar_model_dir=untar)
        kwargs.update(overrides)
        with pytest.raises(ValueError) as error:
            inference.run_inference(**kwargs)
        assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(occupied) == ["model.ckpt-99.index"]


# ---------------------------------------------------------------------------------------------------------------
# inference.py, as a program
# ---------------------------------------------------------------------------------------------------------------

def _command(video_data, out, *extra):
    return [sys.executable, os.path.join(REPO, "inference.py"), f"--train_dir={video_data['train_dir']}",
            f"--input_data_pattern={video_data['pattern']}", f"--output_file={out}", "--batch_size=1", *extra]


def test_killed_run_leaves_the_old_file_and_a_full_run_replaces_it(video_data, tmp_path):
    out = tmp_path / "submission.csv"
    out.write_text("previous submission\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen(_command(video_data, out), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env, cwd=REPO)
    try:
        for line in process.stdout:
            if line.startswith("started"):
                break
        assert process.poll() is None, "inference.py finished before it could be killed"
        [temp] = [name for name in os.listdir(tmp_path) if name.startswith(".submission.csv.tmp")]
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert out.read_text() == "previous submission\n"
    assert [n for n in os.listdir(tmp_path) if not n.startswith(".")] == ["submission.csv"]

    archive = tmp_path / "model.tgz"
    done = subprocess.run(_command(video_data, out, "--top_k=4", f"--output_model_tgz={archive}"),
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote 48 rows (48 videos) to '{out}'" in done.stdout
    with tarfile.open(archive) as tar:
        assert "model_flags.json" in tar.getnames()
    rows = parse_video_csv(out.read_text())
    assert len(rows) == 48 and all(len(r[1]) == 4 for r in rows)

    failed = subprocess.run(_command(video_data, tmp_path / "other.csv", "--ensemble_weights=1,2"),
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("inference.py: error:")]
    assert errors == ["inference.py: error: --ensemble_weights has 2 values but --train_dir lists 1 models"]
    assert not (tmp_path / "other.csv").exists()
    # SIGKILL cannot be caught: the killed run's hidden temporary file stays; the failed run left nothing.
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == [temp]
