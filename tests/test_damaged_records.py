"""A real 2018 shard damaged in its middle record three ways (three flipped bits in the data, a flipped bit in the
length field, the file cut inside the record): train.py, eval.py, inference.py and label_stats stop with one line
naming the file and the record (exit 2), or with --skip_corrupt_records skip exactly that record and count it
(exit 0). The expected record numbers, offsets and counts come from the test's own walk of the file's framing."""

import concurrent.futures
import json
import os
import shutil
import struct

import keras
import pytest
import tensorflow as tf

from tests import cli_testing as cli
from yt8m_tf import flags as flags_lib, inference, label_stats, registry
from yt8m_tf.training import train_dir as train_dir_lib, trainer

SETTINGS = flags_lib.default_model_settings(feature_names="mean_rgb,mean_audio", feature_sizes="1024,128",
                                            num_classes=3862)
SKIP_HINT = "fix or remove it, or pass --skip_corrupt_records to skip"


def _record_starts(data):
    """Byte offsets of every record of a whole TFRecord file: each is an 8-byte length, its 4-byte CRC, the data
    and the data's 4-byte CRC."""
    starts, offset = [], 0
    while offset < len(data):
        starts.append(offset)
        offset += 16 + struct.unpack("<Q", data[offset:offset + 8])[0]
    assert offset == len(data)
    return starts


@pytest.fixture(scope="module")
def shards(real_data_dir, tmp_path_factory):
    """Three damaged copies of validate0000 and what each one's message and salvage must say."""
    root = tmp_path_factory.mktemp("damaged")
    data = open(os.path.join(real_data_dir, "v2-video", "validate0000.tfrecord"), "rb").read()
    starts = _record_starts(data)
    index = len(starts) // 2
    start, end = starts[index], starts[index + 1]
    flipped = bytearray(data)
    for bit, position in enumerate((100, 137, 174)):
        flipped[start + 12 + position] ^= 1 << bit
    length = bytearray(data)
    length[start + 1] ^= 1  # the length field now says 256 bytes more or less: the rest of the walk is garbage
    cut = data[:start + 12 + 50]
    cases = {}
    for kind, content in (("flipped", flipped), ("length", length), ("cut", cut)):
        path = str(root / kind / "validate0000.tfrecord")
        os.makedirs(os.path.dirname(path))
        open(path, "wb").write(bytes(content))
        cases[kind] = {"path": path}
    tail = (f"after its {index} complete record(s) (from byte {start}) are not a whole record")
    cases["flipped"].update(read=len(starts) - 1, tail=False, message=(
        f"corrupt or truncated TFRecord file '{cases['flipped']['path']}': record {index} (from byte {start}) fails "
        f"its checksum: its data is damaged; {SKIP_HINT} corrupt records"))
    cases["length"].update(read=index, tail=True, message=(
        f"TFRecord file '{cases['length']['path']}' is truncated or corrupt: {len(data) - start} byte(s) {tail} (the "
        f"length field of record {index} fails its checksum); {SKIP_HINT} its unreadable tail"))
    cases["cut"].update(read=index, tail=True, message=(
        f"TFRecord file '{cases['cut']['path']}' is truncated or corrupt: 62 byte(s) {tail} (cut inside record "
        f"{index}: {end - start - 62} byte(s) of it are missing); {SKIP_HINT} its unreadable tail"))
    for case in cases.values():
        case["summary"] = (f"skipped 1 corrupt record(s) in 1 file(s): {case['path']} "
                           f"(1{', unreadable tail' if case['tail'] else ''})")
    keras.utils.set_random_seed(0)
    model = registry.build_model(SETTINGS)
    tf.train.CheckpointManager(train_dir_lib.make_checkpoint(model), str(root / "model"), max_to_keep=1,
                               checkpoint_name=train_dir_lib.CHECKPOINT_NAME).save(checkpoint_number=1)
    train_dir_lib.write_json(train_dir_lib.settings_path(str(root / "model")), SETTINGS)
    return {"root": root, "model": str(root / "model"), **cases}


@pytest.mark.parametrize("kind", ["flipped", "length", "cut"])
def test_inference_and_label_stats_name_the_record_or_skip_it(shards, kind, tmp_path, capsys):
    case = shards[kind]
    out = tmp_path / "p.csv"
    with pytest.raises(ValueError) as error:
        inference.run_inference(shards["model"], case["path"], str(out), batch_size=128)
    assert str(error.value) == case["message"]
    assert label_stats.main(["--data_pattern", case["path"], "--output_dir", str(tmp_path / "stats")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"yt8m-label-stats: error: {case['message']}"]
    assert sorted(os.listdir(tmp_path)) == []  # nothing written

    stats = inference.run_inference(shards["model"], case["path"], str(out), batch_size=128,
                                    skip_corrupt_records=True)
    assert stats["videos"] == case["read"] and len(out.read_text().splitlines()) == case["read"] + 1
    assert case["summary"] in capsys.readouterr().out.splitlines()
    assert label_stats.main(["--data_pattern", case["path"], "--output_dir", str(tmp_path / "stats"),
                             "--skip_corrupt_records"]) == 0
    assert case["summary"] in capsys.readouterr().out.splitlines()
    assert json.load(open(tmp_path / "stats" / "label_stats.json"))["num_videos"] == case["read"]


def test_train_and_eval_name_the_record_or_skip_it(shards, tmp_path, capsys):
    case = shards["flipped"]
    # One epoch: the records cannot be counted (a damaged file), so it ends with the data, all of it read.
    options = dict(train_data_pattern=case["path"], batch_size=128, num_epochs=1, progress=False, shuffle_buffer=512)
    with pytest.raises(trainer.TrainingError) as error:
        trainer.train(SETTINGS, trainer.TrainOptions(train_dir=str(tmp_path / "stopped"), **options))
    assert str(error.value) == case["message"]
    trainer.train(SETTINGS, trainer.TrainOptions(train_dir=str(tmp_path / "run"), skip_corrupt_records=True,
                                                 **options))
    assert case["summary"] in capsys.readouterr().out.splitlines()

    # eval.py as a program, both runs at once: the line a user sees, and nothing else on stderr (TensorFlow's
    # start-up lines are quiet at the default TF_CPP_MIN_LOG_LEVEL)
    args = [f"--eval_data_pattern={case['path']}", f"--train_dir={shards['model']}", "--run_once"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        failed, done = pool.map(lambda extra: cli.run("eval.py", *args, *extra, check=False,
                                                      env={"TF_CPP_MIN_LOG_LEVEL": "2"}),
                                [[], ["--skip_corrupt_records"]])
    assert failed.returncode == 2 and failed.stderr.splitlines() == [f"eval.py: error: {case['message']}"]
    assert done.returncode == 0 and case["summary"] in done.stdout.splitlines()
    assert f"{case['read']} videos" in done.stdout
    shutil.rmtree(os.path.join(shards["model"], "eval"), ignore_errors=True)
