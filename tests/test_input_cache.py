"""The parsed-video cache (`dataset(cache_dir=...)`, --input_cache_dir): the uncached pipeline's batches exactly,
entries keyed by the files and the settings, never a half-written or stale entry, one-line errors."""

import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import readers
from readers import cache
from yt8m_tf import synthetic

RGB, AUDIO, CLASSES, MAX_FRAMES = 6, 3, 12, 8


def _bytes_list(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _sequence_example(id_key, video_id, labels, rgb, audio):
    """A record assembled field by field (independently of yt8m_tf.synthetic); labels None: no `labels` key."""
    example = tf.train.SequenceExample()
    example.context.feature[id_key].CopyFrom(_bytes_list([video_id]))
    if labels is not None:
        example.context.feature["labels"].int64_list.value.extend(labels)
    for name, frames in (("rgb", rgb), ("audio", audio)):
        feature_list = example.feature_lists.feature_list[name]
        for frame in frames:
            feature_list.feature.add().CopyFrom(_bytes_list([bytes(frame)]))
    return example.SerializeToString()


def _frames(rng, count, size):
    return [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 files, 19 videos: two written by the project's writer, one assembled here with the edge cases (2017 id key,
    rgb and audio of different lengths, no frames, more than max_frames with an unused frame of the wrong size,
    no labels, a repeated label)."""
    folder = tmp_path_factory.mktemp("frame")
    synthetic.write_dataset(str(folder), level="frame", num_shards=2, videos_per_shard=7, num_classes=CLASSES,
                            rgb_size=RGB, audio_size=AUDIO, min_frames=1, max_frames=12, seed=4)
    rng = np.random.default_rng(5)
    long_rgb = _frames(rng, 11, RGB)
    long_rgb[9] = long_rgb[9][:2]  # past max_frames: never read
    records = [
        _sequence_example("video_id", b"x0", [3, 1], _frames(rng, 5, RGB), _frames(rng, 5, AUDIO)),
        _sequence_example("id", b"x1", [0], _frames(rng, 6, RGB), _frames(rng, 4, AUDIO)),
        _sequence_example("id", b"x2", None, [], []),
        _sequence_example("id", b"x3", [11, 2], long_rgb, _frames(rng, 11, AUDIO)),
        _sequence_example("id", b"x4", [2, 2], _frames(rng, 3, RGB), _frames(rng, 3, AUDIO)),
    ]
    with tf.io.TFRecordWriter(str(folder / "train0002.tfrecord")) as writer:
        for record in records:
            writer.write(record)
    return str(folder / "*.tfrecord")


def _reader(quantized=True, **kwargs):
    return readers.FrameLevelReader("rgb,audio", f"{RGB},{AUDIO}", CLASSES, MAX_FRAMES, quantized=quantized, **kwargs)


def _batches(dataset):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset]


def _assert_same_batches(cached, uncached):
    assert len(cached) == len(uncached)
    for new, old in zip(cached, uncached):
        assert sorted(new) == sorted(old)
        for key in old:
            assert new[key].dtype == old[key].dtype and new[key].shape == old[key].shape, key
            np.testing.assert_array_equal(new[key], old[key], err_msg=key)


def _built(capsys):
    out = capsys.readouterr().out
    return out.split("input cache: parsing ", 1)[1].split(" files", 1)[0] if "input cache" in out else "none"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))  # shared: built by the first test that reads it


@pytest.mark.parametrize("quantized, shuffle, drop_remainder, epochs", [
    (True, False, False, 1), (False, False, False, 1),  # eval order, partial last batch
    (True, True, False, 2), (False, True, False, 2),  # shuffled, partial last batch
    (True, True, True, 2),  # the trainer's configuration
])
def test_cached_batches_are_the_uncached_batches(data, cache_dir, quantized, shuffle, drop_remainder, epochs):
    config = dict(shuffle=shuffle, drop_remainder=drop_remainder, num_epochs=epochs, num_readers=2, seed=7,
                  shuffle_buffer=6, deterministic=True)
    cached = _batches(_reader(quantized).dataset(data, 5, cache_dir=cache_dir, **config))
    _assert_same_batches(cached, _batches(_reader(quantized).dataset(data, 5, **config)))
    # Known counts: 19 videos per epoch, each video once per epoch; a partial last batch unless dropped.
    ids = np.concatenate([b["video_ids"] for b in cached])
    assert len(ids) == (19 * epochs // 5 * 5 if drop_remainder else 19 * epochs)
    assert [len(b["video_ids"]) for b in cached][-1] == (5 if drop_remainder else 19 * epochs % 5)
    if not drop_remainder:
        assert sorted(ids) == sorted(list(set(ids)) * epochs) and len(set(ids)) == 19
    if shuffle and not drop_remainder:
        assert list(ids[:19]) != list(ids[19:])  # a new order every epoch
    # The edge cases against their records: rgb 6 / audio 4 frames -> 4; 11 frames -> max_frames.
    rows = {vid: (b, i) for b in cached for i, vid in enumerate(b["video_ids"])}
    batch, row = rows[b"x1"]
    assert batch["num_frames"][row] == 4 and not batch["video_matrix"][row, 4:].any()
    batch, row = rows[b"x3"]
    assert batch["num_frames"][row] == MAX_FRAMES and np.flatnonzero(batch["labels"][row]).tolist() == [2, 11]
    batch, row = rows[b"x2"]
    assert batch["num_frames"][row] == 0 and not batch["labels"][row].any()


def test_entries_are_built_once_keyed_by_file_and_settings(data, tmp_path, capsys):
    folder, cache_dir = tmp_path / "data", str(tmp_path / "cache")
    shutil.copytree(os.path.dirname(data), folder, ignore=shutil.ignore_patterns("train0001*"))
    pattern = str(folder / "*.tfrecord")
    _reader().dataset(pattern, 4, cache_dir=cache_dir)
    assert _built(capsys) == "2 of 2"
    entries = sorted(os.listdir(cache_dir))
    assert [e.split(".tfrecord.")[0] for e in entries] == ["train0000", "train0002"]
    # The parsed videos take about the TFRecord size on disk.
    stored = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache_dir) for f in fs)
    assert 0.3 < stored / sum(os.path.getsize(f) for f in glob.glob(pattern)) < 3
    _reader(quantized=False).dataset(pattern, 4, cache_dir=cache_dir, shuffle=True)  # float frames: the same entries
    assert _built(capsys) == "none"
    readers.FrameLevelReader("rgb,audio", f"{RGB},{AUDIO}", CLASSES, MAX_FRAMES - 1).dataset(
        str(folder / "train0002.tfrecord"), 4, cache_dir=cache_dir)  # other settings: their own entry
    assert _built(capsys) == "1 of 1" and len(os.listdir(cache_dir)) == 3
    # A rewritten file is parsed again; its old entry is never read.
    synthetic.write_dataset(str(folder), level="frame", num_shards=1, videos_per_shard=3, num_classes=CLASSES,
                            rgb_size=RGB, audio_size=AUDIO, min_frames=1, max_frames=12, seed=9)  # train0000
    cached = _batches(_reader().dataset(pattern, 4, cache_dir=cache_dir))
    assert _built(capsys) == "1 of 2"
    _assert_same_batches(cached, _batches(_reader().dataset(pattern, 4)))
    assert sum(len(b["video_ids"]) for b in cached) == 3 + 5


def test_half_written_or_mismatched_entries_are_never_read(data, tmp_path, capsys):
    data, cache_dir = data.replace("*", "train000[02]"), str(tmp_path / "cache")
    expected = _batches(_reader().dataset(data, 4))
    _reader().dataset(data, 4, cache_dir=cache_dir)
    entries = sorted(glob.glob(os.path.join(cache_dir, "*")))
    # A run killed mid-write leaves a `.partial-` directory: a truncated copy of an entry here, which must not be read.
    partial = entries[0] + ".partial-killed"
    shutil.copytree(entries[0], partial)
    for snapshot in glob.glob(os.path.join(partial, "videos", "*", "*", "*.snapshot")):
        with open(snapshot, "r+b") as f:
            f.truncate(os.path.getsize(snapshot) // 2)
    shutil.rmtree(entries[0])
    # An entry whose completion marker was written for other settings (or is missing: the same check).
    with open(os.path.join(entries[1], "cache.json"), "w") as f:
        f.write('{"key": {"settings": "other"}}')
    capsys.readouterr()
    _assert_same_batches(_batches(_reader().dataset(data, 4, cache_dir=cache_dir)), expected)
    assert _built(capsys) == "2 of 2" and os.path.isdir(partial)
    # A second builder of an entry that another process completed meanwhile keeps that one.
    marker = os.path.join(entries[1], "cache.json")
    before = os.stat(marker).st_ino, open(marker).read()
    cache.build(entries[1], json.loads(before[1])["key"], tf.data.Dataset.range(0))
    assert (os.stat(marker).st_ino, open(marker).read()) == before
    assert sorted(glob.glob(os.path.join(cache_dir, "*"))) == sorted(entries[:2] + [partial])


def test_cache_errors_are_one_line(data, tmp_path, monkeypatch):
    with pytest.raises(readers.ReaderError, match="must be a local directory"):
        _reader().dataset(data, 4, cache_dir="gs://bucket/cache")
    with pytest.raises(readers.ReaderError, match="video-level records are cheap to parse"):
        readers.VideoLevelReader("mean_rgb,mean_audio", f"{RGB},{AUDIO}", CLASSES).dataset(
            _video_file(tmp_path), 4, cache_dir=str(tmp_path / "c"))
    segments = synthetic.write_dataset(str(tmp_path / "segments"), level="frame", num_shards=1, videos_per_shard=2,
                                       num_classes=CLASSES, rgb_size=RGB, audio_size=AUDIO, segments=True)
    with pytest.raises(readers.ReaderError, match="segment mode"):
        _reader(segment_labels=True).dataset(segments[0], 4, cache_dir=str(tmp_path / "c"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 1000))
    with pytest.raises(readers.ReaderError, match=r"has 0.0 GiB free but the cache of the input needs about"):
        _reader().dataset(data, 4, cache_dir=str(tmp_path / "full"))
    monkeypatch.undo()

    def no_space(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", no_space)
    with pytest.raises(readers.ReaderError, match=r"cannot write the input cache entry '.*train0002.tfrecord.\w+' "
                                                  r"\(No space left on device\)"):
        _reader().dataset(data.replace("*", "train0002"), 4, cache_dir=str(tmp_path / "nospace"))
    monkeypatch.undo()
    assert os.listdir(tmp_path / "nospace") == []
    # A bad record: the error names the file, and no entry is left for it.
    rng = np.random.default_rng(1)
    bad = tmp_path / "bad" / "train0000.tfrecord"
    bad.parent.mkdir()
    with tf.io.TFRecordWriter(str(bad)) as writer:
        writer.write(synthetic.frame_example("ok", [1], np.stack(_frames(rng, 3, RGB)), np.stack(_frames(rng, 3, AUDIO))))
        writer.write(synthetic.frame_example("bad", [1], np.stack(_frames(rng, 3, RGB + 1)), np.stack(_frames(rng, 3, AUDIO))))
    with pytest.raises(readers.ReaderError) as info:
        _reader().dataset(str(bad), 4, cache_dir=str(tmp_path / "cache"))
    assert str(info.value) == (f"frame feature 'rgb' has a frame of {RGB + 1} bytes, expected {RGB} (--feature_sizes) "
                               f"in '{bad}'")
    assert os.listdir(tmp_path / "cache") == []


def _video_file(tmp_path):
    return synthetic.write_dataset(str(tmp_path / "video"), level="video", num_shards=1, videos_per_shard=2,
                                   rgb_size=RGB, audio_size=AUDIO)[0]


@pytest.mark.parametrize("level", ["frame", "frame cached", "video"])
def test_drop_remainder_gives_static_shapes(data, cache_dir, tmp_path, level):
    """Every tensor entering the training step has a fully static shape (TPUs)."""
    if level == "video":
        reader, pattern, width = readers.VideoLevelReader("mean_rgb,mean_audio", f"{RGB},{AUDIO}", CLASSES), \
            _video_file(tmp_path), [RGB + AUDIO]
    else:
        reader, pattern, width = _reader(), data, [MAX_FRAMES, RGB + AUDIO]
    dataset = reader.dataset(pattern, 2, shuffle=True, drop_remainder=True,
                             cache_dir=cache_dir if level == "frame cached" else None)
    shapes = {key: spec.shape.as_list() for key, spec in dataset.element_spec.items()}
    assert shapes == {"video_ids": [2], "video_matrix": [2] + width, "num_frames": [2], "labels": [2, CLASSES]}
