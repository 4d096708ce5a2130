"""Label statistics (yt8m_tf.label_stats): counts against hand and brute-force computations, every record layout,
errors, files, the trainer hook and the CLI."""

import collections
import json
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf

import readers
from readers.files import ReaderError
from yt8m_tf import label_stats, synthetic
from yt8m_tf.label_processing import normalize_correlation

RGB, AUDIO = 6, 3  # tiny feature sizes
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _brute(label_lists, num_classes):
    """Dense reference: multi-hot Y (one row per video, repeated ids count once) -> (Y.sum(0), Y^T Y)."""
    y = np.zeros((len(label_lists), num_classes), np.int64)
    for row, labels in enumerate(label_lists):
        y[row, list(labels or [])] = 1
    return y.sum(0), y.T @ y


def _video_records(label_lists, id_key="id"):
    return [synthetic.video_example(f"v{i}", labels, np.full(RGB, i, np.float32), np.zeros(AUDIO, np.float32), id_key)
            for i, labels in enumerate(label_lists)]


def _frame_records(label_lists, id_key="id", seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, labels in enumerate(label_lists):
        frames = int(rng.integers(0, 7))
        out.append(synthetic.frame_example(f"v{i}", labels, rng.integers(0, 256, (frames, RGB), dtype=np.uint8),
                                           rng.integers(0, 256, (frames, AUDIO), dtype=np.uint8), id_key))
    return out


def _split_fields(record):
    """A serialized (Sequence)Example -> its top-level fields as raw byte strings (tag, length, payload)."""
    fields, pos = [], 0
    while pos < len(record):
        start = pos
        pos += 1  # one-byte tag (fields 1 and 2, wire type 2)
        length = shift = 0
        while True:
            byte = record[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        pos += length
        fields.append(record[start:pos])
    return fields


LABELS = [[0, 1, 2], [1, 2], [2], [], [6, 0], [1, 1, 3], None, [5]]  # [] = empty list, None = no labels key
C = 7


# ---- counting ---------------------------------------------------------------------------------------------------

def test_hand_computed_counts_across_batches_and_files(tmp_path):
    _write(tmp_path / "a.tfrecord", _video_records(LABELS[:5]))
    _write(tmp_path / "b.tfrecord", _video_records(LABELS[5:]))
    stats = label_stats.compute(str(tmp_path / "*.tfrecord"), C, batch_size=3)
    # By hand: class 0 in videos 0, 4; class 1 in 0, 1, 5 (listed twice in 5: counted once); ...
    np.testing.assert_array_equal(stats["class_counts"], [2, 3, 3, 1, 0, 1, 1])
    expected = np.array([
        [2, 1, 1, 0, 0, 0, 1],
        [1, 3, 2, 1, 0, 0, 0],
        [1, 2, 3, 0, 0, 0, 0],
        [0, 1, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [1, 0, 0, 0, 0, 0, 1]])
    np.testing.assert_array_equal(stats["cooccurrence"], expected)
    assert stats["cooccurrence"].dtype == np.int64 and stats["class_counts"].dtype == np.int64
    assert stats["num_videos"] == 8 and stats["videos_with_labels"] == 6
    assert stats["total_labels"] == 3 + 2 + 1 + 2 + 2 + 1 and stats["max_labels"] == 3
    counts, cooc = _brute(LABELS, C)
    np.testing.assert_array_equal(stats["cooccurrence"], cooc)
    np.testing.assert_array_equal(stats["class_counts"], counts)
    # Any batch size, and an explicit file list (what the trainer passes), give the same numbers.
    for batch_size, pattern in ((1, str(tmp_path / "*.tfrecord")), (1024, [str(tmp_path / "b.tfrecord"),
                                                                            str(tmp_path / "a.tfrecord")])):
        again = label_stats.compute(pattern, C, batch_size=batch_size)
        np.testing.assert_array_equal(again["cooccurrence"], expected)


def test_int64_switch_keeps_counts(tmp_path, monkeypatch):
    """The int32 accumulator switches to int64 before the number of videos could overflow it."""
    monkeypatch.setattr(label_stats, "_INT32_LIMIT", 4)
    _write(tmp_path / "a.tfrecord", _video_records(LABELS))
    stats = label_stats.compute(str(tmp_path / "a.tfrecord"), C, batch_size=3)
    np.testing.assert_array_equal(stats["cooccurrence"], _brute(LABELS, C)[1])


def test_random_labels_match_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    lists = [sorted(rng.choice(40, size=rng.integers(0, 9), replace=False).tolist()) for _ in range(300)]
    _write(tmp_path / "r.tfrecord", _video_records(lists))
    stats = label_stats.compute(str(tmp_path / "r.tfrecord"), 40, batch_size=64)
    counts, cooc = _brute(lists, 40)
    np.testing.assert_array_equal(stats["class_counts"], counts)
    np.testing.assert_array_equal(stats["cooccurrence"], cooc)
    assert (stats["cooccurrence"] == stats["cooccurrence"].T).all()


def test_frame_level_reads_the_same_labels_as_video_level(tmp_path):
    lists = LABELS * 3
    _write(tmp_path / "video.tfrecord", _video_records(lists))
    _write(tmp_path / "frame.tfrecord", _frame_records(lists))
    # Layout variants: context keys in another order, and the frames (field 2) BEFORE the context (field 1).
    swapped = []
    for i, record in enumerate(_frame_records(lists, seed=1)):
        context, frames = _split_fields(record)
        swapped.append(frames + context if i % 2 else record)
    _write(tmp_path / "swapped.tfrecord", swapped)
    ordered = [synthetic.frame_example(f"v{i}", labels, np.zeros((2, RGB), np.uint8), np.zeros((2, AUDIO), np.uint8),
                                       context_order=("labels", "id") if labels is not None else None)
               for i, labels in enumerate(lists)]
    _write(tmp_path / "ordered.tfrecord", ordered)
    video = label_stats.compute(str(tmp_path / "video.tfrecord"), C, batch_size=5)
    for name in ("frame", "swapped", "ordered"):
        frame = label_stats.compute(str(tmp_path / f"{name}.tfrecord"), C, batch_size=5)
        np.testing.assert_array_equal(frame["cooccurrence"], video["cooccurrence"])
        assert frame["num_videos"] == video["num_videos"] == len(lists)
    np.testing.assert_array_equal(video["cooccurrence"], _brute(lists, C)[1])


def test_written_datasets_frame_and_video_agree_with_the_readers(tmp_path):
    common = dict(num_shards=2, videos_per_shard=30, min_frames=0, max_frames=4, rgb_size=RGB, audio_size=AUDIO,
                  num_classes=30, seed=5)
    synthetic.write_dataset(str(tmp_path / "frame"), level="frame", segments=True, **common)
    synthetic.write_dataset(str(tmp_path / "video"), level="video", **common)
    frame = label_stats.compute(str(tmp_path / "frame" / "*.tfrecord"), 30, batch_size=16)
    video = label_stats.compute(str(tmp_path / "video" / "*.tfrecord"), 30, batch_size=7)
    np.testing.assert_array_equal(frame["cooccurrence"], video["cooccurrence"])
    # Independent path: the readers' multi-hot labels, Y^T Y.
    reader = readers.VideoLevelReader("mean_rgb,mean_audio", f"{RGB},{AUDIO}", num_classes=30)
    y = np.concatenate([b["labels"].numpy() for b in reader.dataset(str(tmp_path / "video" / "*.tfrecord"), 16)])
    np.testing.assert_array_equal(video["cooccurrence"], (y.T @ y).astype(np.int64))
    assert video["num_videos"] == 60 and video["total_labels"] == int(y.sum())


def test_2017_video_id_records(tmp_path):
    _write(tmp_path / "v1.tfrecord", _video_records(LABELS, id_key="video_id"))
    _write(tmp_path / "f1.tfrecord", _frame_records(LABELS, id_key="video_id"))
    for name in ("v1", "f1"):
        stats = label_stats.compute(str(tmp_path / f"{name}.tfrecord"), C)
        np.testing.assert_array_equal(stats["cooccurrence"], _brute(LABELS, C)[1])
    synthetic.write_dataset(str(tmp_path / "w"), level="video", release="2017", num_shards=1, videos_per_shard=20,
                            rgb_size=RGB, audio_size=AUDIO, num_classes=25)
    stats = label_stats.compute(str(tmp_path / "w" / "*.tfrecord"), 25)
    assert stats["num_videos"] == 20 and stats["class_counts"].sum() == stats["total_labels"] > 0


def test_files_without_labels_give_zero_counts(tmp_path):
    synthetic.write_dataset(str(tmp_path), level="frame", num_shards=1, videos_per_shard=12, min_frames=1,
                            max_frames=3, rgb_size=RGB, audio_size=AUDIO, with_labels=False, prefix="test")
    stats = label_stats.compute(str(tmp_path / "*.tfrecord"), 3862)
    assert stats["num_videos"] == 12 and stats["videos_with_labels"] == 0 and stats["total_labels"] == 0
    assert stats["class_counts"].shape == (3862,) and not stats["class_counts"].any()
    assert not stats["cooccurrence"].any()


def test_label_id_out_of_range_says_what_to_do(tmp_path):
    path = _write(tmp_path / "train0000.tfrecord", _video_records([[1], [2, 9], [3]]))
    with pytest.raises(ReaderError) as info:
        label_stats.compute(path, 5, batch_size=2)
    message = str(info.value)
    assert "label id 9" in message and "--num_classes 5" in message and "train0000.tfrecord" in message
    assert "--num_classes 4716" in message and "\n" not in message
    negative = _write(tmp_path / "neg.tfrecord", _video_records([[1, -3]]))
    with pytest.raises(ReaderError, match="negative label id -3 in '.*neg.tfrecord'"):
        label_stats.compute(negative, 5)


def test_bad_input_errors_name_the_file(tmp_path):
    with pytest.raises(ReaderError, match="no files match"):
        label_stats.compute(str(tmp_path / "missing*.tfrecord"), 5)
    good = _write(tmp_path / "a.tfrecord", _video_records([[1]]))
    example = tf.train.Example()
    example.features.feature["id"].bytes_list.value.append(b"x")
    example.features.feature["labels"].float_list.value.append(1.0)  # wrong type
    _write(tmp_path / "b.tfrecord", [example.SerializeToString()])
    with pytest.raises(ReaderError, match="cannot read the labels of '.*b.tfrecord'"):
        label_stats.compute(str(tmp_path / "*.tfrecord"), 5)
    example = tf.train.Example()
    example.features.feature["labels"].int64_list.value.append(1)
    with pytest.raises(ReaderError, match="no 'id' or 'video_id' key"):
        label_stats.compute(_write(tmp_path / "c.tfrecord", [example.SerializeToString()]), 5)
    (tmp_path / "d.tfrecord").write_bytes(b"not a tfrecord file at all")
    with pytest.raises(ReaderError, match="d.tfrecord"):
        label_stats.compute(str(tmp_path / "d.tfrecord"), 5)
    assert label_stats.compute(good, 5)["num_videos"] == 1


# ---- files ------------------------------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    _write(tmp_path / "a.tfrecord", _video_records(LABELS))
    stats = label_stats.compute(str(tmp_path / "a.tfrecord"), C)
    out = tmp_path / "stats"
    paths = label_stats.save(str(out), stats)
    assert sorted(os.listdir(out)) == ["class_counts.npy", "label_cooccurrence.npy", "label_correlation.npy",
                                       "label_stats.json"]  # no temporary file left behind
    loaded = label_stats.load(str(out))
    assert set(loaded) == {"class_counts", "correlation"}
    np.testing.assert_array_equal(loaded["class_counts"], stats["class_counts"])
    assert loaded["class_counts"].dtype == np.int64 and loaded["correlation"].dtype == np.float32
    np.testing.assert_array_equal(loaded["correlation"], normalize_correlation(stats["cooccurrence"], "row"))
    cooc = np.load(paths["cooccurrence"], allow_pickle=False)
    assert cooc.dtype == np.int64
    np.testing.assert_array_equal(cooc, stats["cooccurrence"])
    # "row": M[i, j] = N[i, j] / sum_k N[i, k], row = target class; rows of classes that occur sum to 1.
    m = loaded["correlation"]
    np.testing.assert_allclose(m[1], [1 / 7, 3 / 7, 2 / 7, 1 / 7, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(m.sum(1), (stats["class_counts"] > 0).astype(float), rtol=1e-6)
    summary = json.loads((out / "label_stats.json").read_text())
    assert summary["num_videos"] == 8 and summary["num_classes"] == C and summary["method"] == "row"
    assert summary["labels_per_video"] == pytest.approx(11 / 8) and summary["data_pattern"].endswith("a.tfrecord")
    # Another method overwrites in place; the correlation changes, the counts do not.
    label_stats.save(str(out), stats, method="seilna")
    np.testing.assert_array_equal(label_stats.load(str(out))["correlation"],
                                  normalize_correlation(stats["cooccurrence"], "seilna"))
    with pytest.raises(label_stats.LabelStatsError, match="unknown --method"):
        label_stats.save(str(out), stats, method="softmax")
    os.remove(out / "label_correlation.npy")
    with pytest.raises(label_stats.LabelStatsError, match="label_correlation.npy' not found") as info:
        label_stats.load(str(out))
    assert "\n" not in str(info.value)
    assert set(label_stats.load(str(out), keys=("class_counts",))) == {"class_counts"}


def test_load_class_counts_from_npy_and_vocabulary(tmp_path):
    np.save(tmp_path / "class_counts.npy", np.arange(4, dtype=np.int64), allow_pickle=False)
    np.testing.assert_array_equal(label_stats.load_class_counts(str(tmp_path / "class_counts.npy"), 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(label_stats.load_class_counts(str(tmp_path), 4), [0, 1, 2, 3])  # a directory
    with pytest.raises(label_stats.LabelStatsError, match=r"expected \[5\]"):
        label_stats.load_class_counts(str(tmp_path / "class_counts.npy"), 5)
    # Rows are placed by Index, not by row order.
    (tmp_path / "vocab.csv").write_text("Index,TrainVideoCount,Name\n2,30,c\n0,10,a\n1,20,\"b, x\"\n")
    np.testing.assert_array_equal(label_stats.load_class_counts(str(tmp_path / "vocab.csv"), 3), [10, 20, 30])
    with pytest.raises(label_stats.LabelStatsError, match="3 rows"):
        label_stats.load_class_counts(str(tmp_path / "vocab.csv"), 4)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(label_stats.LabelStatsError, match="TrainVideoCount"):
        label_stats.load_class_counts(str(tmp_path / "bad.csv"), 1)


def test_real_vocabulary(real_data_dir):
    counts = label_stats.load_class_counts(os.path.join(real_data_dir, "vocabulary.csv"), 3862)
    assert counts.shape == (3862,) and counts.dtype == np.int64
    assert counts.max() == 788288 and counts[0] == 788288  # Index 0, "Game"
    assert counts.min() == 123 and counts[3812] == 123  # Index 3812, "Cylinder"
    assert counts.sum() == 11711620
    with pytest.raises(label_stats.LabelStatsError, match="--num_classes 4716"):
        label_stats.load_class_counts(os.path.join(real_data_dir, "vocabulary.csv"), 4716)


# ---- the trainer hook -------------------------------------------------------------------------------------------

def _settings(**overrides):
    settings = {"model": "LogisticModel", "num_classes": C, "label_alpha": 1.0, "label_beta": 0.0, "label_gamma": 0.0}
    settings.update(overrides)
    return settings


def test_for_training(tmp_path, capsys, monkeypatch):
    data = _write(tmp_path / "train0000.tfrecord", _video_records(LABELS))
    train_dir = tmp_path / "model"
    options = types.SimpleNamespace(train_dir=str(train_dir), train_data_pattern=data, label_stats_dir="")
    assert label_stats.for_training(_settings(), options, [data]) == {}
    # Computed once, saved into train_dir, one line printed.
    stats = label_stats.for_training(_settings(model="AdaptiveNoiseModel"), options, [data])
    assert list(stats) == ["class_counts"]
    np.testing.assert_array_equal(stats["class_counts"], [2, 3, 3, 1, 0, 1, 1])
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and str(train_dir) in printed[0] and "8 training videos" in printed[0]
    assert (train_dir / "class_counts.npy").exists() and (train_dir / "label_correlation.npy").exists()
    # Then loaded from train_dir (no second pass).
    monkeypatch.setattr(label_stats, "compute", lambda *a, **k: pytest.fail("computed again"))
    stats = label_stats.for_training(_settings(model="AdaptiveNoiseModel", label_gamma=0.1), options, [data])
    assert list(stats) == ["class_counts", "correlation"] and stats["correlation"].shape == (C, C)
    assert list(label_stats.for_training(_settings(label_beta=0.1), options, [data])) == ["correlation"]
    assert capsys.readouterr().out == ""
    # --label_stats_dir wins; a directory without the files, or for another num_classes, is a one-line error.
    options.label_stats_dir = str(tmp_path / "elsewhere")
    with pytest.raises(label_stats.LabelStatsError, match="elsewhere.*class_counts.npy' not found"):
        label_stats.for_training(_settings(model="AdaptiveNoiseModel"), options, [data])
    options.label_stats_dir = str(train_dir)
    with pytest.raises(label_stats.LabelStatsError, match="for 7 classes but --num_classes is 9"):
        label_stats.for_training(_settings(model="AdaptiveNoiseModel", num_classes=9), options, [data])


def test_for_training_options_without_label_stats_dir(tmp_path, capsys):
    data = _write(tmp_path / "t.tfrecord", _video_records(LABELS))
    options = {"train_dir": str(tmp_path / "m"), "train_data_pattern": data}  # a plain dict works too
    stats = label_stats.for_training(_settings(label_gamma=0.5, label_correlation_method="seilna"), options)
    np.testing.assert_array_equal(stats["correlation"], normalize_correlation(_brute(LABELS, C)[1], "seilna"))
    assert json.loads((tmp_path / "m" / "label_stats.json").read_text())["method"] == "seilna"
    assert "computed from 8 training videos" in capsys.readouterr().out


# ---- real files and the CLI -------------------------------------------------------------------------------------

def test_real_v2_shards(real_data_dir):
    pattern = os.path.join(real_data_dir, "v2-video", "*.tfrecord")
    start = time.perf_counter()
    stats = label_stats.compute(pattern, 3862, batch_size=1024)
    seconds = time.perf_counter() - start
    print(f"real v2 shards: {stats['num_videos']} videos in {seconds:.2f} s ({stats['num_videos'] / seconds:.0f} "
          "videos/s)")
    assert stats["num_videos"] == 28792
    # Independent count: every record parsed with tf.train.Example in Python.
    class_counts, pairs, total = np.zeros(3862, np.int64), collections.Counter(), 0
    for batch in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern))).batch(4096):
        for raw in batch.numpy():
            labels = sorted(set(tf.train.Example.FromString(raw).features.feature["labels"].int64_list.value))
            total += len(labels)
            class_counts[labels] += 1
            pairs.update((i, j) for i in labels for j in labels)
    assert stats["total_labels"] == total == 86550  # about 3.0 labels per video
    np.testing.assert_array_equal(stats["class_counts"], class_counts)
    cooc = stats["cooccurrence"]
    assert np.count_nonzero(cooc) == len(pairs) and cooc.sum() == sum(pairs.values())
    keys = np.array(list(pairs))
    np.testing.assert_array_equal(cooc[keys[:, 0], keys[:, 1]], list(pairs.values()))


def test_real_2017_files(real_data_dir):
    v1 = os.path.join(real_data_dir, "v1-video")
    with pytest.raises(ReaderError, match=r"label id \d+ >= --num_classes 3862 in '.*validatea\d.tfrecord'.*4716"):
        label_stats.compute(os.path.join(v1, "validatea*.tfrecord"), 3862)
    stats = label_stats.compute(os.path.join(v1, "validatea*.tfrecord"), 4716)
    assert stats["num_videos"] == 3419 and stats["class_counts"][3862:].sum() > 0
    test = label_stats.compute(os.path.join(v1, "testa*.tfrecord"), 4716)
    assert test["num_videos"] == 1709 and test["total_labels"] == 0 and not test["cooccurrence"].any()


def test_cli(tmp_path, capsys):
    data = _write(tmp_path / "train0000.tfrecord", _frame_records(LABELS))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "yt8m_tf.label_stats", "--data_pattern", data, "--output_dir",
                             str(out), "--num_classes", str(C), "--method", "seilna"],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "\n" not in line and line.startswith("8 videos, 6/7 classes with >= 1 video, 1.375 labels/video")
    assert "videos/s" in line
    np.testing.assert_array_equal(np.load(out / "label_cooccurrence.npy"), _brute(LABELS, C)[1])
    assert json.loads((out / "label_stats.json").read_text())["method"] == "seilna"
    # Bad input: one line on stderr and exit status 2 (in-process).
    assert label_stats.main(["--data_pattern", data, "--output_dir", str(out), "--num_classes", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("yt8m-label-stats: error: label id 6 >= --num_classes 3") and "\n" not in err
    assert label_stats.main(["--data_pattern", str(tmp_path / "nothing*"), "--output_dir", str(out)]) == 2
    assert "no files match" in capsys.readouterr().err
