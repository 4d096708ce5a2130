import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from yt8m_tf import synthetic
from yt8m_tf.quantization import dequantize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOW, HIGH = -1.9921875, 2.0078125


def _records(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def _parse_frame(record, id_key="id", labels=True, segments=False):
    context = {id_key: tf.io.FixedLenFeature([], tf.string)}
    if labels:
        context["labels"] = tf.io.VarLenFeature(tf.int64)
    if segments:
        context.update({"segment_labels": tf.io.VarLenFeature(tf.int64),
                        "segment_start_times": tf.io.VarLenFeature(tf.int64),
                        "segment_end_times": tf.io.VarLenFeature(tf.int64),
                        "segment_scores": tf.io.VarLenFeature(tf.float32)})
    sequence = {"rgb": tf.io.FixedLenSequenceFeature([], tf.string),
                "audio": tf.io.FixedLenSequenceFeature([], tf.string)}
    ctx, seq = tf.io.parse_single_sequence_example(record, context_features=context, sequence_features=sequence)
    out = {k: (v.values.numpy() if isinstance(v, tf.SparseTensor) else v.numpy()) for k, v in ctx.items()}
    out["rgb"] = [bytes(x) for x in seq["rgb"].numpy()]
    out["audio"] = [bytes(x) for x in seq["audio"].numpy()]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Byte compatibility with the real files.
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, id_key, has_labels, field2", [
    ("v2-video/validate0000.tfrecord", "id", True, []),
    ("v1-video/validatea0.tfrecord", "video_id", True, None),
    ("v1-video/testa0.tfrecord", "video_id", False, None),
])
def test_reserializing_real_records_reproduces_their_bytes(real_data_dir, name, id_key, has_labels, field2):
    records = _records(os.path.join(real_data_dir, name))[:60]
    default_order_hits = 0
    for raw in records:
        layout = synthetic.wire_layout(raw)
        assert layout["feature_lists"] == field2  # 2018: empty field 2 present; 2017: absent
        assert sorted(layout["features"]) == sorted([id_key, "mean_rgb", "mean_audio"] + ["labels"] * has_labels)
        feature = tf.train.Example.FromString(raw).features.feature
        labels = list(feature["labels"].int64_list.value) if has_labels else None
        args = (feature[id_key].bytes_list.value[0], labels,
                np.array(feature["mean_rgb"].float_list.value, np.float32),
                np.array(feature["mean_audio"].float_list.value, np.float32))
        assert synthetic.video_example(*args, id_key=id_key, key_order=layout["features"]) == raw
        default = synthetic.video_example(*args, id_key=id_key)
        default_order_hits += default == raw
        # Whatever the order, the default layout parses to the same content.
        assert tf.train.Example.FromString(default) == tf.train.Example.FromString(raw)
    assert default_order_hits > 0  # the default order is one the real files use
    if not has_labels:
        assert default_order_hits == len(records)  # 2017 test files always use mean_audio, mean_rgb, video_id


def test_real_2018_records_are_sequence_example_compatible(real_data_dir):
    raw = _records(os.path.join(real_data_dir, "v2-video/validate0000.tfrecord"))[0]
    assert raw.endswith(b"\x12\x00")
    assert tf.train.SequenceExample.FromString(raw).HasField("feature_lists")
    ours = synthetic.video_example("abcd", [1, 2], np.zeros(4), np.zeros(2))
    assert ours.endswith(b"\x12\x00") and synthetic.wire_layout(ours)["feature_lists"] == []
    parsed = tf.io.parse_single_example(ours, {"id": tf.io.FixedLenFeature([], tf.string),
                                               "mean_rgb": tf.io.FixedLenFeature([4], tf.float32)})
    assert parsed["id"].numpy() == b"abcd"
    assert not synthetic.video_example("x", None, [0.0], [0.0], id_key="video_id").endswith(b"\x12\x00")


def test_video_example_encoding_details():
    empty = synthetic.video_example("a", [], [1.5], [2.0])
    assert tf.train.Example.FromString(empty).features.feature["labels"].HasField("int64_list")
    ex = tf.train.Example.FromString(synthetic.video_example("a", [7, 3, 3000000000], np.array([0.1]), [-1.0]))
    assert list(ex.features.feature["labels"].int64_list.value) == [7, 3, 3000000000]  # order kept
    assert ex.features.feature["mean_rgb"].float_list.value[0] == np.float32(0.1)
    with pytest.raises(ValueError):
        synthetic.video_example("a", None, [0.0], [0.0], key_order=("id", "mean_rgb"))


def test_frame_example_matches_protobuf_content():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 1024), dtype=np.uint8)
    audio = rng.integers(0, 256, (3, 128), dtype=np.uint8)
    raw = synthetic.frame_example("vid1", [4, 9], rgb, audio,
                                  segments={"labels": [4], "start_times": [5], "scores": [1.0]})
    seq = tf.train.SequenceExample.FromString(raw)
    expected = tf.train.SequenceExample()
    expected.context.feature["id"].bytes_list.value.append(b"vid1")
    expected.context.feature["labels"].int64_list.value.extend([4, 9])
    expected.context.feature["segment_labels"].int64_list.value.append(4)
    expected.context.feature["segment_start_times"].int64_list.value.append(5)
    expected.context.feature["segment_end_times"].int64_list.value.append(10)
    expected.context.feature["segment_scores"].float_list.value.append(1.0)
    for name, frames in (("rgb", rgb), ("audio", audio)):
        for row in frames:
            expected.feature_lists.feature_list[name].feature.add().bytes_list.value.append(row.tobytes())
    assert seq == expected
    assert len(raw) == expected.ByteSize()
    ctx = seq.context.feature
    assert list(ctx["segment_end_times"].int64_list.value) == [10]
    assert [bytes(f.bytes_list.value[0]) for f in seq.feature_lists.feature_list["rgb"].feature] == [
        r.tobytes() for r in rgb]
    assert synthetic.wire_layout(raw) == {
        "features": ["id", "labels", "segment_labels", "segment_start_times", "segment_end_times",
                     "segment_scores"],
        "feature_lists": ["rgb", "audio"]}
    # float frames are quantized like the official writer
    floats = dequantize(rgb)
    assert synthetic.frame_example("vid1", [4, 9], floats, audio) == synthetic.frame_example(
        "vid1", [4, 9], rgb, audio)
    with pytest.raises(ValueError):
        synthetic.frame_example("v", None, rgb, audio[:2])


# ----------------------------------------------------------------------------------------------------------------
# Written datasets.
# ----------------------------------------------------------------------------------------------------------------

def test_frame_level_2018_files_with_segments(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    paths = synthetic.write_dataset(str(tmp_path), num_shards=2, videos_per_shard=6, min_frames=7, max_frames=23,
                                    num_classes=40, segments=True)
    assert [os.path.basename(p) for p in paths] == ["train0000.tfrecord", "train0001.tfrecord"]
    assert sorted(os.listdir(tmp_path)) == ["keep.txt", "train0000.tfrecord", "train0001.tfrecord"]
    ids, rated = set(), 0
    for path in paths:
        records = _records(path)
        assert len(records) == 6
        for raw in records:
            video = _parse_frame(raw, segments=True)
            ids.add(video["id"])
            assert len(video["id"]) == 4
            labels = video["labels"]
            assert labels.dtype == np.int64 and len(labels) >= 1 and labels.max() < 40
            assert list(labels) == sorted(set(labels))
            assert 7 <= len(video["rgb"]) <= 23 and len(video["audio"]) == len(video["rgb"])
            assert {len(f) for f in video["rgb"]} == {1024} and {len(f) for f in video["audio"]} == {128}
            frames = dequantize(np.frombuffer(b"".join(video["rgb"]), np.uint8))
            assert LOW <= frames.min() and frames.max() <= HIGH
            starts, ends = video["segment_start_times"], video["segment_end_times"]
            assert np.all(starts % 5 == 0) and np.all(ends == starts + 5) and np.all(ends <= len(video["rgb"]))
            assert set(video["segment_labels"]) <= set(labels)
            assert set(video["segment_scores"].tolist()) <= {0.0, 1.0}
            assert video["segment_scores"].dtype == np.float32
            rated += len(starts)
    assert len(ids) == 12 and rated > 0


def test_2017_flavour_and_no_labels(tmp_path):
    paths = synthetic.write_dataset(str(tmp_path), release="2017", num_shards=1, videos_per_shard=5,
                                    min_frames=2, max_frames=4, rgb_size=8, audio_size=4, prefix="validate")
    for raw in _records(paths[0]):
        assert synthetic.wire_layout(raw) == {"features": ["labels", "video_id"], "feature_lists": ["rgb", "audio"]}
        video = _parse_frame(raw, id_key="video_id")
        assert len(video["video_id"]) == 11 and {len(f) for f in video["rgb"]} == {8}
    assert synthetic.make_world(4716, 8, 4).num_classes == synthetic.DEFAULT_NUM_CLASSES["2017"] == 4716
    paths = synthetic.write_dataset(str(tmp_path), level="video", release="2017", num_shards=1, videos_per_shard=4,
                                    min_frames=2, max_frames=4, prefix="test", with_labels=False)
    for raw in _records(paths[0]):
        assert synthetic.wire_layout(raw) == {"features": ["mean_audio", "mean_rgb", "video_id"],
                                              "feature_lists": None}
    paths = synthetic.write_dataset(str(tmp_path), num_shards=1, videos_per_shard=3, min_frames=1, max_frames=2,
                                    rgb_size=8, audio_size=4, prefix="test", with_labels=False)
    for raw in _records(paths[0]):
        assert synthetic.wire_layout(raw)["features"] == ["id"]


def test_video_level_is_the_mean_of_the_frame_level_frames(tmp_path):
    kwargs = dict(num_shards=1, videos_per_shard=5, min_frames=0, max_frames=9, num_classes=30, zero_frame_videos=1)
    frame = synthetic.write_dataset(str(tmp_path / "frame"), **kwargs)
    video = synthetic.write_dataset(str(tmp_path / "video"), level="video", **kwargs)
    spec = {"id": tf.io.FixedLenFeature([], tf.string), "mean_rgb": tf.io.FixedLenFeature([1024], tf.float32),
            "mean_audio": tf.io.FixedLenFeature([128], tf.float32)}
    for f_raw, v_raw in zip(_records(frame[0]), _records(video[0])):
        f, v = _parse_frame(f_raw), tf.io.parse_single_example(v_raw, spec)
        assert f["id"] == v["id"].numpy()
        rgb = dequantize(np.frombuffer(b"".join(f["rgb"]), np.uint8).reshape(-1, 1024))
        expected = rgb.mean(0, dtype=np.float64).astype(np.float32) if len(rgb) else np.zeros(1024, np.float32)
        np.testing.assert_array_equal(v["mean_rgb"].numpy(), expected)
        assert v["mean_audio"].dtype == tf.float32


def test_zero_frame_videos(tmp_path):
    paths = synthetic.write_dataset(str(tmp_path), num_shards=2, videos_per_shard=4, min_frames=3, max_frames=5,
                                    num_classes=10, rgb_size=8, audio_size=4, zero_frame_videos=3)
    counts = []
    for path in paths:
        for raw in _records(path):
            assert synthetic.wire_layout(raw)["feature_lists"] == ["rgb", "audio"]
            counts.append(len(_parse_frame(raw)["rgb"]))
    assert counts.count(0) == 3 and all(3 <= c <= 5 for c in counts if c)


def test_deterministic_for_a_seed(tmp_path):
    kwargs = dict(num_shards=2, videos_per_shard=3, min_frames=2, max_frames=6, num_classes=20, rgb_size=16,
                  audio_size=8, segments=True)
    a = synthetic.write_dataset(str(tmp_path / "a"), seed=3, **kwargs)
    b = synthetic.write_dataset(str(tmp_path / "b"), seed=3, **kwargs)
    c = synthetic.write_dataset(str(tmp_path / "c"), seed=4, **kwargs)
    d = synthetic.write_dataset(str(tmp_path / "d"), seed=3, prefix="validate", **kwargs)
    e = synthetic.write_dataset(str(tmp_path / "e"), seed=3, **{**kwargs, "num_shards": 1, "videos_per_shard": 6})
    read = lambda paths: b"".join(open(p, "rb").read() for p in paths)  # noqa: E731
    assert read(a) == read(b)
    assert read(a) != read(c) and read(a) != read(d)
    assert [r for p in a for r in _records(p)] == _records(e[0])  # video i does not depend on the shard split


# ----------------------------------------------------------------------------------------------------------------
# Learnable structure.
# ----------------------------------------------------------------------------------------------------------------

def _label_matrix(world, count, seed=0):
    y = np.zeros((count, world.num_classes))
    for i in range(count):
        y[i, synthetic.sample_video(world, np.random.default_rng([seed, i]), 0)["labels"]] = 1
    return y


def test_power_law_and_co_occurrence_groups():
    world = synthetic.make_world(200, 8, 4)
    y = _label_matrix(world, 3000)
    counts = y.sum(0)
    assert counts[0] == counts.max() and counts.max() > 10 * max(np.median(counts), 1)
    assert 2.0 < y.sum(1).mean() < 4.0
    mates = [(a, b) for g in world.groups for a in g for b in g if a != b]
    assert len(mates) > 50
    conditional = (y.T @ y) / np.maximum(counts[:, None], 1)
    is_mate = np.zeros_like(conditional, bool)
    is_mate[tuple(np.array(mates).T)] = True
    np.fill_diagonal(conditional, np.nan)
    frequent = counts[:, None] >= 20
    mate_rate = conditional[is_mate & frequent].mean()
    other_rate = np.nanmean(np.where(~is_mate & frequent, conditional, np.nan))
    assert mate_rate > 0.4 and mate_rate > 8 * other_rate


def _ridge_scores(x, y, train):
    x1 = np.c_[x, np.ones(len(x))]
    w = np.linalg.solve(x1[:train].T @ x1[:train] + 0.1 * np.eye(x1.shape[1]), x1[:train].T @ y[:train])
    return x1[train:] @ w


def _auc(score, target):
    ranks = np.argsort(np.argsort(score))
    pos = target.sum()
    return (ranks[target == 1].sum() - pos * (pos - 1) / 2) / (pos * (len(target) - pos))


def test_main_scene_order_and_audio_signals_are_learnable():
    world = synthetic.make_world(30, 32, 16)
    (c_ab, c_ba), = world.order_pairs
    audio_only = world.audio_only_classes[0]
    videos = [synthetic.sample_video(world, np.random.default_rng([5, i]), 24) for i in range(1500)]
    y = np.zeros((len(videos), 30))
    for i, v in enumerate(videos):
        y[i, v["labels"]] = 1
    assert y[:, c_ab].sum() >= 20 and y[:, c_ba].sum() >= 20 and y[:, audio_only].sum() >= 20
    assert not np.any(y[:, c_ab] * y[:, c_ba])  # mutually exclusive
    rgb = np.stack([dequantize(v["rgb"]) for v in videos])
    audio = np.stack([dequantize(v["audio"]) for v in videos])
    assert LOW <= rgb.min() and rgb.max() <= HIGH
    train, test = 1100, y[1100:]

    def mean_auc(x, classes):
        scores = _ridge_scores(x, y, train)
        return np.mean([_auc(scores[:, c], test[:, c]) for c in classes])

    def pair_separation(x):
        scores = _ridge_scores(x, y, train)
        either = (test[:, c_ab] + test[:, c_ba]) > 0
        return _auc(scores[either, c_ab] - scores[either, c_ba], test[either, c_ab])

    plain = [c for c in range(30) if y[:train, c].sum() >= 10 and c not in (c_ab, c_ba, audio_only)]
    mean_rgb, halves = rgb.mean(1), np.c_[rgb[:, :12].mean(1), rgb[:, 12:].mean(1)]
    assert mean_auc(mean_rgb, plain) > mean_auc(rgb[:, 12], plain) + 0.05  # pooling beats one frame
    assert mean_auc(mean_rgb, plain) > 0.9
    assert mean_auc(mean_rgb, [audio_only]) < 0.7  # no rgb evidence
    assert mean_auc(np.c_[mean_rgb, audio.mean(1)], [audio_only]) > 0.9
    assert abs(pair_separation(np.c_[mean_rgb, audio.mean(1)]) - 0.5) < 0.2  # bag of frames cannot tell
    assert pair_separation(halves) > 0.9  # temporal order can


# ----------------------------------------------------------------------------------------------------------------
# Errors and the command line.
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [dict(level="clip"), dict(release="2019"), dict(min_frames=5, max_frames=4),
                                    dict(num_shards=0), dict(zero_frame_videos=99), dict(level="video", segments=True),
                                    dict(prefix="a/b"), dict(segment_classes=[5000])])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        synthetic.write_dataset(str(tmp_path), videos_per_shard=2, **kwargs)
    assert not os.path.exists(tmp_path / "train0000.tfrecord")


def test_cli_argument_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--output_dir", str(tmp_path), "--min_frames", "9", "--max_frames", "3"])
    assert exit_info.value.code == 2
    assert "max_frames (3) must be >= min_frames (9)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synthetic.main(["--output_dir", str(tmp_path), "--num_shards", "0"])
    assert "must be >= 1" in capsys.readouterr().err


def test_cli_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "yt8m_tf.synthetic", "--output_dir", str(tmp_path), "--level", "frame",
         "--release", "2018", "--num_shards", "1", "--videos_per_shard", "3", "--min_frames", "5", "--max_frames", "6",
         "--seed", "1", "--segments", "--num_classes", "50", "--prefix", "validate"],
        capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "wrote 3 frame-level videos" in result.stdout
    records = _records(str(tmp_path / "validate0000.tfrecord"))
    assert len(records) == 3 and "segment_scores" in synthetic.wire_layout(records[0])["features"]
