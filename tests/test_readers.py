"""Readers: official layouts (real files and files from the project's writer), edge cases and one-line errors."""

import os

import numpy as np
import pytest
import tensorflow as tf

import readers
from readers.files import describe_error
from yt8m_tf import synthetic
from yt8m_tf.quantization import dequantize

RGB, AUDIO = 6, 3  # tiny feature sizes
FRAME_SIZES = f"{RGB},{AUDIO}"


def _collect(dataset):
    batches = list(dataset)
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}, [len(b["video_ids"]) for b in batches]


def _write(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _frames(rng, count, size):
    return rng.integers(0, 256, size=(count, size), dtype=np.uint8)


# ---- real files ------------------------------------------------------------------------------------------------

def test_real_2018_video_level(real_data_dir):
    reader = readers.VideoLevelReader("mean_rgb,mean_audio", "1024,128", num_classes=3862)
    data, sizes = _collect(reader.dataset(os.path.join(real_data_dir, "v2-video", "validate*.tfrecord"), 4096))
    assert len(data["video_ids"]) == 28792  # SOURCES.md
    assert len(set(data["video_ids"])) == 28792
    assert sizes[-1] == 28792 % 4096  # the last partial batch is kept
    assert data["video_matrix"].shape == (28792, 1152) and data["video_matrix"].dtype == np.float32
    assert data["video_matrix"].min() == pytest.approx(-1.9921875) and data["video_matrix"].max() == pytest.approx(2.0078125)
    assert data["labels"].shape == (28792, 3862)
    assert 2.9 < data["labels"].sum(1).mean() < 3.1
    assert (data["num_frames"] == 1).all()
    # Order: sorted files then record order; compare with a plain read of the first file.
    first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(
        os.path.join(real_data_dir, "v2-video", "validate0000.tfrecord")))).numpy())
    assert data["video_ids"][0] == first.features.feature["id"].bytes_list.value[0]
    np.testing.assert_array_equal(np.flatnonzero(data["labels"][0]), sorted(first.features.feature["labels"].int64_list.value))
    np.testing.assert_allclose(data["video_matrix"][0, :1024], first.features.feature["mean_rgb"].float_list.value)


def test_real_2017_video_id_and_test_files(real_data_dir):
    reader = readers.VideoLevelReader(num_classes=4716)
    validate, _ = _collect(reader.dataset(os.path.join(real_data_dir, "v1-video", "validatea*.tfrecord"), 1000))
    assert len(validate["video_ids"]) == 3419
    assert all(len(v) == 11 for v in validate["video_ids"])  # real YouTube ids under `video_id`
    assert validate["labels"][:, 3862:].sum() > 0  # 2017 ids above 3861
    test, _ = _collect(reader.dataset(os.path.join(real_data_dir, "v1-video", "testa*.tfrecord"), 1000))
    assert len(test["video_ids"]) == 1709 and test["labels"].sum() == 0
    assert all(v.isdigit() for v in test["video_ids"])


def test_2017_data_with_2018_classes_says_what_to_do(real_data_dir):
    reader = readers.VideoLevelReader(num_classes=3862)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        list(reader.dataset(os.path.join(real_data_dir, "v1-video", "validatea0.tfrecord"), 512))
    message = describe_error(info.value)
    assert "--num_classes 3862" in message and "validatea0.tfrecord" in message and "4716" in message
    assert "\n" not in message


# ---- frame level, written by the project's writer -----------------------------------------------------------

@pytest.fixture
def frame_file(tmp_path):
    rng = np.random.default_rng(0)
    videos = [("a", [1, 2], 4), ("b", [0], 0), ("c", None, 12), ("d", [9], 1)]
    records, content = [], {}
    for vid, labels, count in videos:
        rgb, audio = _frames(rng, count, RGB), _frames(rng, count, AUDIO)
        content[vid] = (labels, rgb, audio)
        records.append(synthetic.frame_example(vid, labels, rgb, audio))
    return _write(tmp_path / "train0000.tfrecord", records), content


def test_frame_level_values_padding_and_truncation(frame_file):
    path, content = frame_file
    reader = readers.FrameLevelReader("rgb,audio", FRAME_SIZES, num_classes=10, max_frames=8)
    data, sizes = _collect(reader.dataset(path, 3))
    assert sizes == [3, 1]
    assert list(data["video_ids"]) == [b"a", b"b", b"c", b"d"]
    np.testing.assert_array_equal(data["num_frames"], [4, 0, 8, 1])  # min(T, max_frames); 0 frames -> 0
    assert data["video_matrix"].shape == (4, 8, RGB + AUDIO)
    for row, vid in enumerate(data["video_ids"]):
        labels, rgb, audio = content[vid.decode()]
        n = data["num_frames"][row]
        expected = np.concatenate([dequantize(rgb[:n]), dequantize(audio[:n])], axis=1)
        np.testing.assert_array_equal(data["video_matrix"][row, :n], expected)  # the official formula, exactly
        assert (data["video_matrix"][row, n:] == 0).all()
        assert sorted(np.flatnonzero(data["labels"][row])) == sorted(labels or [])
    assert np.isfinite(data["video_matrix"]).all()


def test_quantized_mode_keeps_uint8(frame_file):
    path, _ = frame_file
    floats, _ = _collect(readers.FrameLevelReader("rgb,audio", FRAME_SIZES, 10, 8).dataset(path, 4))
    codes, _ = _collect(readers.FrameLevelReader("rgb,audio", FRAME_SIZES, 10, 8, quantized=True).dataset(path, 4))
    assert codes["video_matrix"].dtype == np.uint8
    valid = np.arange(8)[None, :] < codes["num_frames"][:, None]
    np.testing.assert_array_equal(np.where(valid[..., None], dequantize(codes["video_matrix"]), 0), floats["video_matrix"])


def test_feature_selection_order(frame_file):
    path, content = frame_file
    data, _ = _collect(readers.FrameLevelReader("audio", str(AUDIO), 10, 8).dataset(path, 4))
    np.testing.assert_array_equal(data["video_matrix"][0, :4], dequantize(content["a"][2]))
    data, _ = _collect(readers.FrameLevelReader(["audio", "rgb"], [AUDIO, RGB], 10, 8).dataset(path, 4))
    np.testing.assert_array_equal(data["video_matrix"][0, :4, :AUDIO], dequantize(content["a"][2]))


def test_written_datasets_both_releases_and_order(tmp_path):
    for release, key_classes in (("2018", 3862), ("2017", 4716)):
        out = tmp_path / release
        synthetic.write_dataset(str(out), level="frame", release=release, num_shards=3, videos_per_shard=5,
                                min_frames=2, max_frames=9, rgb_size=RGB, audio_size=AUDIO, seed=1)
        reader = readers.FrameLevelReader("rgb,audio", FRAME_SIZES, num_classes=key_classes, max_frames=9)
        data, _ = _collect(reader.dataset(str(out / "*.tfrecord"), 4))
        expected_ids = []
        for shard in sorted(out.glob("*.tfrecord")):
            for raw in tf.data.TFRecordDataset(str(shard)):
                context = tf.train.SequenceExample.FromString(raw.numpy()).context.feature
                expected_ids.append(context["id" if release == "2018" else "video_id"].bytes_list.value[0])
        assert list(data["video_ids"]) == expected_ids


def test_segment_mode(tmp_path):
    rng = np.random.default_rng(1)
    rgb, audio = _frames(rng, 12, RGB), _frames(rng, 12, AUDIO)
    seg = {"labels": [3, 5, 3], "start_times": [0, 0, 5], "scores": [1.0, 0.0, 1.0]}
    path = _write(tmp_path / "s.tfrecord", [synthetic.frame_example("v", [3, 5], rgb, audio, segments=seg)])
    reader = readers.FrameLevelReader("rgb,audio", FRAME_SIZES, num_classes=10, max_frames=20, segment_labels=True)
    data, _ = _collect(reader.dataset(path, 8))
    np.testing.assert_array_equal(data["segment_start_times"], [0, 5])
    assert data["video_matrix"].shape == (2, 5, RGB + AUDIO)
    np.testing.assert_array_equal(data["video_matrix"][1, :, :RGB], dequantize(rgb[5:10]))
    np.testing.assert_array_equal(data["labels"][0], np.eye(10)[3])  # class 5 rated 0 in segment 0
    np.testing.assert_array_equal(data["label_weights"][0], np.eye(10)[3] + np.eye(10)[5])
    np.testing.assert_array_equal(data["label_weights"][1], np.eye(10)[3])


def test_shards_are_disjoint_and_complete(tmp_path):
    synthetic.write_dataset(str(tmp_path), level="video", num_shards=4, videos_per_shard=3, rgb_size=RGB,
                            audio_size=AUDIO)
    reader = readers.VideoLevelReader("mean_rgb,mean_audio", FRAME_SIZES)
    pattern = str(tmp_path / "*.tfrecord")
    parts = [set(_collect(reader.dataset(pattern, 5, shard=(i, 2)))[0]["video_ids"]) for i in range(2)]
    assert not parts[0] & parts[1] and len(parts[0] | parts[1]) == 12


def test_shuffled_training_input_repeats(tmp_path):
    synthetic.write_dataset(str(tmp_path), level="video", num_shards=2, videos_per_shard=5, rgb_size=RGB,
                            audio_size=AUDIO)
    reader = readers.VideoLevelReader("mean_rgb,mean_audio", FRAME_SIZES)
    data, sizes = _collect(reader.dataset(str(tmp_path / "*.tfrecord"), 4, shuffle=True, num_epochs=2,
                                          drop_remainder=True, seed=3))
    assert sizes == [4] * 5 and len(set(data["video_ids"])) == 10


# ---- frame level and 2019 segments, records assembled field by field in the test ---------------------------------

def _sequence_example(context, feature_lists):
    """A tf.train.SequenceExample built field by field, keys in the given order: context {key: (kind, values)} with
    kind "bytes", "int64" or "float"; feature_lists {name: one bytes value per frame}."""
    example = tf.train.SequenceExample()
    for key, (kind, values) in context.items():
        getattr(example.context.feature[key], f"{kind}_list").value.extend(values)
    for name, frames in feature_lists.items():
        feature_list = example.feature_lists.feature_list[name]
        for frame in frames:
            feature_list.feature.add().bytes_list.value.append(frame)
    return example.SerializeToString()


def _starter_dequantize(codes):
    """The starter code's Dequantize(max 2, min -2): codes * 4 / 255 + 4 / 512 - 2, in float64."""
    return codes.astype(np.float64) * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)


def test_frame_level_records_built_by_hand(tmp_path):
    """The 2018 frame-level layout (context `id`, `labels`; feature lists `rgb` 1024 and `audio` 128 bytes per
    frame): a video with a repeated label, a 0-frame video, and a label-less video longer than max_frames."""
    rng = np.random.default_rng(5)
    videos = [("Ab3x", [4, 17, 4], 7), ("Cd9y", [3861], 0), ("Ef0z", None, 12)]
    records, codes = [], {}
    for video_id, labels, count in videos:
        rgb, audio = rng.integers(0, 256, (count, 1024), np.uint8), rng.integers(0, 256, (count, 128), np.uint8)
        codes[video_id] = (rgb, audio)
        context = {"id": ("bytes", [video_id.encode()])}
        if labels is not None:
            context["labels"] = ("int64", labels)
        records.append(_sequence_example(context, {"rgb": [f.tobytes() for f in rgb],
                                                   "audio": [f.tobytes() for f in audio]}))
    path = _write(tmp_path / "train0000.tfrecord", records)
    data, _ = _collect(readers.FrameLevelReader("rgb,audio", "1024,128", num_classes=3862, max_frames=10)
                       .dataset(path, 3))
    assert data["video_ids"].tolist() == [b"Ab3x", b"Cd9y", b"Ef0z"]
    np.testing.assert_array_equal(data["num_frames"], [7, 0, 10])
    assert data["video_matrix"].shape == (3, 10, 1152) and data["video_matrix"].dtype == np.float32
    for row, (video_id, _, count) in enumerate(videos):
        rgb, audio = codes[video_id]
        kept = min(count, 10)
        expected = np.zeros((10, 1152))
        expected[:kept] = np.concatenate([_starter_dequantize(rgb[:kept]), _starter_dequantize(audio[:kept])], 1)
        np.testing.assert_allclose(data["video_matrix"][row], expected, rtol=0, atol=1e-6)
    expected_labels = np.zeros((3, 3862))
    expected_labels[0, [4, 17]] = 1
    expected_labels[1, 3861] = 1
    np.testing.assert_array_equal(data["labels"], expected_labels)


def test_segment_records_built_by_hand(tmp_path):
    """The 2019 layout adds context `segment_start_times`, `segment_labels`, `segment_scores` (one entry per rated
    (segment, class) pair): one example per rated segment, in order of first appearance, its 5 frames, the scores at
    the rated classes as labels and 1 at the rated classes as label weights."""
    rng = np.random.default_rng(6)
    rgb, audio = rng.integers(0, 256, (12, 1024), np.uint8), rng.integers(0, 256, (12, 128), np.uint8)
    context = {"id": ("bytes", [b"Gh1w"]), "labels": ("int64", [7, 9, 30]),
               "segment_start_times": ("int64", [5, 0, 5]), "segment_labels": ("int64", [7, 7, 9]),
               "segment_scores": ("float", [1.0, 0.0, 1.0])}
    path = _write(tmp_path / "validate0000.tfrecord", [_sequence_example(
        context, {"rgb": [f.tobytes() for f in rgb], "audio": [f.tobytes() for f in audio]})])
    reader = readers.FrameLevelReader("rgb,audio", "1024,128", num_classes=40, max_frames=300, segment_labels=True)
    data, _ = _collect(reader.dataset(path, 8))
    assert data["video_ids"].tolist() == [b"Gh1w", b"Gh1w"]
    np.testing.assert_array_equal(data["segment_start_times"], [5, 0])
    np.testing.assert_array_equal(data["num_frames"], [5, 5])
    for row, start in enumerate([5, 0]):
        expected = np.concatenate([_starter_dequantize(rgb[start:start + 5]),
                                   _starter_dequantize(audio[start:start + 5])], 1)
        np.testing.assert_allclose(data["video_matrix"][row], expected, rtol=0, atol=1e-6)
    labels, weights = np.zeros((2, 40)), np.zeros((2, 40))
    labels[0, [7, 9]] = 1.0  # segment 5: class 7 scored 1, class 9 scored 1
    weights[0, [7, 9]] = 1.0
    weights[1, 7] = 1.0  # segment 0: class 7 rated, scored 0
    np.testing.assert_array_equal(data["labels"], labels)
    np.testing.assert_array_equal(data["label_weights"], weights)


# ---- bad input: one line naming the file or pattern ---------------------------------------------------------

def test_pattern_errors(tmp_path):
    reader = readers.VideoLevelReader()
    with pytest.raises(readers.ReaderError, match="no files match the data pattern '.*nothing"):
        reader.dataset(str(tmp_path / "nothing*.tfrecord"), 2)
    with pytest.raises(readers.ReaderError, match="is a directory"):
        reader.dataset(str(tmp_path), 2)
    (tmp_path / "empty.tfrecord").write_bytes(b"")
    with pytest.raises(readers.ReaderError, match="empty.tfrecord' is empty"):
        reader.dataset(str(tmp_path / "empty.tfrecord"), 2)


def test_layout_errors(frame_file):
    path, _ = frame_file
    with pytest.raises(readers.ReaderError, match="pass --frame_features"):
        readers.VideoLevelReader().dataset(path, 2)
    with pytest.raises(readers.ReaderError, match=r"'audio' .* has 3 bytes per frame but --feature_sizes says 4"):
        readers.FrameLevelReader("rgb,audio", f"{RGB},4", 10).dataset(path, 2)
    with pytest.raises(readers.ReaderError, match=r"'depth' not found .*frame features present: \['audio', 'rgb'\]"):
        readers.FrameLevelReader("rgb,depth", FRAME_SIZES, 10).dataset(path, 2)
    with pytest.raises(readers.ReaderError, match="same number of features"):
        readers.FrameLevelReader("rgb,audio", "6", 10)


def test_real_video_level_file_read_as_frames_says_drop_frame_features(real_data_dir):
    with pytest.raises(readers.ReaderError, match="drop --frame_features"):
        readers.FrameLevelReader().dataset(os.path.join(real_data_dir, "v2-video", "validate0000.tfrecord"), 2)


def test_bad_frame_length_in_a_later_record(tmp_path):
    rng = np.random.default_rng(2)
    good = synthetic.frame_example("ok", [1], _frames(rng, 3, RGB), _frames(rng, 3, AUDIO))
    bad = synthetic.frame_example("bad", [1], _frames(rng, 3, RGB + 2), _frames(rng, 3, AUDIO))
    path = _write(tmp_path / "mixed.tfrecord", [good, bad])
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        list(readers.FrameLevelReader("rgb,audio", FRAME_SIZES, 10).dataset(path, 2))
    message = describe_error(info.value)
    assert message == f"frame feature 'rgb' has a frame of {RGB + 2} bytes, expected {RGB} (--feature_sizes) in '{path}'"


def _records_file(tmp_path, name, count=5):
    rng = np.random.default_rng(3)
    records = [synthetic.video_example(f"v{i}", [i], rng.normal(size=RGB), rng.normal(size=AUDIO))
               for i in range(count)]
    path = _write(tmp_path / name, records)
    return path, [len(r) + 16 for r in records]


def test_corrupt_and_truncated_records(tmp_path):
    reader = readers.VideoLevelReader("mean_rgb,mean_audio", FRAME_SIZES, 10)
    path, sizes = _records_file(tmp_path, "flip.tfrecord")
    data = bytearray(open(path, "rb").read())
    data[sum(sizes[:2]) + 12 + 3] ^= 0xFF  # a byte inside record 2's data: CRC mismatch
    open(path, "wb").write(bytes(data))
    truncated, tsizes = _records_file(tmp_path, "trunc.tfrecord")
    whole = open(truncated, "rb").read()
    open(truncated, "wb").write(whole[: sum(tsizes[:3]) + 20])  # cut inside record 3's data

    for bad in (path, truncated):
        with pytest.raises(tf.errors.DataLossError) as info:
            list(reader.dataset(bad, 2))
        message = describe_error(info.value, [bad])
        assert bad in message and "--skip_corrupt_records" in message and "\n" not in message

    counter = readers.CorruptRecordCounter()
    data, _ = _collect(reader.dataset(f"{path},{truncated}", 2, skip_corrupt=counter))
    # Exactly the corrupt record is skipped in the flipped file; the truncated file loses its cut tail.
    assert list(data["video_ids"]) == [b"v0", b"v1", b"v3", b"v4", b"v0", b"v1", b"v2"]
    assert counter.skipped == {path: 1, truncated: 1} and counter.truncated == [truncated]
    assert "skipped 2 corrupt record(s)" in counter.summary()
