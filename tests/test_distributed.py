"""Several replicas train as one device does; the device-side loop; distributed evaluation; TPU path rules.

In-process, over the 4 logical CPU devices tests/conftest.py makes (XLA is not used: MirroredStrategy over logical
CPU devices cannot place it).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import readers
from tests import cli_testing as cli
from yt8m_tf import flags as yt8m_flags, losses, registry
from yt8m_tf.training import ema, evaluation, optimization, step as step_lib, strategy as strategy_lib
from yt8m_tf.training import train_dir as train_dir_lib, trainer

RGB, AUDIO = 64, 32  # wide enough that the MoE's kernel gradients exceed the default clipping norm of 1
SETTINGS = yt8m_flags.default_model_settings(model="MoeModel", feature_names="mean_rgb,mean_audio",
                                             feature_sizes=f"{RGB},{AUDIO}", num_classes=cli.CLASSES)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"train": cli.write_data(root, rgb_size=RGB, audio_size=AUDIO),  # 2 x 32 videos
            "validate": cli.write_data(root, prefix="validate", shards=1, videos=37, seed=7, rgb_size=RGB,
                                       audio_size=AUDIO)}


def run(data, train_dir, replicas=1, **overrides):
    """trainer.train on `replicas` logical CPUs (the default strategy for 1), the flag defaults otherwise: clipping
    at norm 1 included."""
    values = dict(train_data_pattern=data["train"], train_dir=str(train_dir), batch_size=16, max_steps=6,
                  base_learning_rate=0.05, shuffle_buffer=1, num_readers=1, deterministic=True, progress=False,
                  strategy="mirrored" if replicas > 1 else "default", logical_cpu_devices=replicas)
    values.update(overrides)
    return trainer.train(SETTINGS, trainer.TrainOptions(**values))


def test_1_2_and_4_replicas_end_with_the_same_weights_and_evaluate_alike(data, tmp_path):
    one = run(data, tmp_path / "one")
    two = run(data, tmp_path / "two", replicas=2)
    four = run(data, tmp_path / "four", replicas=4, eval_data_pattern=data["validate"])
    unclipped = run(data, tmp_path / "unclipped", clip_gradient_norm=0.0)
    # Same global batches: the summed gradients are one device's, clipped after the sum.
    assert two["weights"] == pytest.approx(one["weights"], rel=1e-6)
    assert four["weights"] == pytest.approx(one["weights"], rel=1e-6)
    assert unclipped["weights"] != pytest.approx(one["weights"], rel=1e-3)  # the clipping was active
    # The periodic evaluation on 4 replicas (37 videos: a partial batch and an empty one, masked) gives the numbers
    # of evaluating the saved checkpoint on one device, as eval.py does.
    model, settings, step = train_dir_lib.load_trained_model(str(tmp_path / "four"))
    reader = registry.make_reader(settings)
    loss_fn = losses.get_loss(settings["label_loss"])
    alone = evaluation.evaluate(model, reader.dataset(data["validate"], 16), 16, cli.CLASSES, loss_fn)
    assert four["eval"]["num_examples"] == alone["num_examples"] == 37
    for key in evaluation.SUMMARY_KEYS:
        assert four["eval"][key] == pytest.approx(alone[key], rel=1e-5, abs=1e-7), key


def test_k_steps_in_one_loop_are_k_single_steps_and_an_epoch_ends_without_an_exception(data, tmp_path,
                                                                                          monkeypatch):
    single = run(data, tmp_path / "single", max_steps=8)
    # Uncountable records (as on gs://): 2 epochs of 64 videos end by the end-of-data signal inside a device loop
    # of 3 steps (3 + 3 + 2), never by an exception; on 2 replicas.
    monkeypatch.setattr(readers.files, "count_records", lambda files: None)
    looped = run(data, tmp_path / "looped", replicas=2, max_steps=0, num_epochs=2, steps_per_loop=3)
    assert looped["step"] == single["step"] == 8
    assert looped["weights"] == pytest.approx(single["weights"], rel=1e-6)


def test_every_tensor_entering_the_replicas_has_a_static_shape(tmp_path):
    data = cli.write_data(tmp_path, level="frame", shards=2, videos=8)
    settings = yt8m_flags.default_model_settings(frame_features=True, feature_names="rgb,audio", model="LstmModel",
                                                 feature_sizes=f"{cli.RGB},{cli.AUDIO}", num_classes=cli.CLASSES,
                                                 max_frames=12)
    options = trainer.TrainOptions(train_data_pattern=data, train_dir=str(tmp_path / "run"), batch_size=8)
    strategy = strategy_lib.make_strategy("mirrored", cpu_devices=2)
    distributed = trainer.training_input(strategy, registry.make_reader(settings), options, repeat=True)
    specs = tf.nest.flatten(distributed.element_spec, expand_composites=True)
    assert {tuple(spec.shape) for spec in specs} == {(4, 12, cli.RGB + cli.AUDIO), (4,), (4, cli.CLASSES)}


def _mlp_step(strategy, dropout, batch_size=8, mixed_float16=False):
    """A small MLP, its optimizer and TrainStep built under `strategy` (a fixed --seed)."""
    keras.utils.set_random_seed(3)
    settings = yt8m_flags.default_model_settings(model="MlpModel", mlp_hidden_sizes="16", mlp_dropout=dropout,
                                                 feature_names="mean_rgb,mean_audio", num_classes=cli.CLASSES,
                                                 feature_sizes=f"{cli.RGB},{cli.AUDIO}")
    with strategy.scope():
        model = registry.build_model(settings)
        optimizer = optimization.make_optimizer("adam", 0.01, clip_gradient_norm=1.0,
                                                mixed_precision="mixed_float16" if mixed_float16 else "none")
        optimizer.build(model.trainable_variables)
    step = step_lib.TrainStep(model, losses.get_loss("CrossEntropyLoss"), optimizer, batch_size)
    return model, optimizer, tf.function(lambda batch: strategy.run(step, args=(batch,)))


def _batch(rng, size=4, scale=1.0):
    labels = np.zeros((size, cli.CLASSES), np.float32)
    labels[np.arange(size), rng.integers(0, cli.CLASSES, size)] = 1.0
    return {"video_matrix": (scale * rng.normal(size=(size, cli.RGB + cli.AUDIO))).astype(np.float32),
            "num_frames": np.ones(size, np.int32), "labels": labels}


def test_each_replica_draws_its_own_dropout_and_a_rerun_draws_the_same():
    strategy = strategy_lib.make_strategy("mirrored", cpu_devices=2)

    def losses_per_replica(dropout):
        _, _, step = _mlp_step(strategy, dropout)
        batch = _batch(np.random.default_rng(0))  # the same 4 videos on both replicas
        return np.array([[float(v) for v in strategy.experimental_local_results(step(batch)["loss"])]
                         for _ in range(3)])

    first, again, without = losses_per_replica(0.5), losses_per_replica(0.5), losses_per_replica(0.0)
    np.testing.assert_array_equal(without[:, 0], without[:, 1])  # no dropout: the same batch, the same loss
    assert (first[:, 0] != first[:, 1]).all()  # the replicas dropped different units
    assert len(set(first[:, 0])) == 3  # and different ones at every step
    np.testing.assert_array_equal(first, again)  # the same --seed draws the same masks


def test_mixed_float16_overflow_on_one_replica_skips_the_step_on_all():
    strategy = strategy_lib.make_strategy("mirrored", cpu_devices=2)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, optimizer, step = _mlp_step(strategy, 0.0, mixed_float16=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rng = np.random.default_rng(1)
    normal, huge = _batch(rng), _batch(rng, scale=10.0)  # x 10: finite loss, float16 gradients overflow at 2**15
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: (normal, huge)[context.replica_id_in_sync_group])
    before = [w.numpy() for w in model.trainable_weights]
    scale = float(optimizer.dynamic_scale.numpy())
    step(per_replica)
    for weight, old in zip(model.trainable_weights, before):  # skipped on both replicas, weights unchanged
        for copy in strategy.experimental_local_results(weight.value):
            np.testing.assert_array_equal(copy.numpy(), old)
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2
    step(strategy.experimental_distribute_values_from_function(lambda context: normal))
    updated = model.trainable_weights[0].value
    copies = [c.numpy() for c in strategy.experimental_local_results(updated)]
    assert np.isfinite(copies[0]).all() and not np.array_equal(copies[0], before[0])
    np.testing.assert_array_equal(copies[0], copies[1])


def test_a_remote_tpu_node_needs_gs_paths():
    strategy_lib.check_remote_tpu_paths("local", {"train_dir": "/tmp/run"})  # a TPU VM reads local files
    strategy_lib.check_remote_tpu_paths("my-node", {"train_dir": "gs://b/run", "eval_data_pattern": ""})
    with pytest.raises(strategy_lib.StrategyError, match="--train_data_pattern '/data/a' is a local path"):
        strategy_lib.check_remote_tpu_paths("my-node", {"train_data_pattern": "gs://b/x,/data/a"})


def test_weight_average_follows_its_formula_on_every_replica():
    strategy = strategy_lib.make_strategy("mirrored", cpu_devices=2)
    keras.utils.set_random_seed(3)
    settings = yt8m_flags.default_model_settings(model="LogisticModel", feature_names="mean_rgb,mean_audio",
                                                 feature_sizes=f"{cli.RGB},{cli.AUDIO}", num_classes=cli.CLASSES)
    with strategy.scope():
        model = registry.build_model(settings)
        optimizer = optimization.make_optimizer("sgd", 0.5)
        optimizer.build(model.trainable_variables)
        average = ema.WeightAverage(model, 0.9)
    step = step_lib.TrainStep(model, losses.get_loss("CrossEntropyLoss"), optimizer, 8, average=average)
    run_step = tf.function(lambda batch: strategy.run(step, args=(batch,)))
    rng = np.random.default_rng(0)
    raw = [[w.numpy() for w in model.trainable_weights]]
    for _ in range(2):
        run_step(strategy.experimental_distribute_values_from_function(lambda context: _batch(rng)))
        raw.append([w.numpy() for w in model.trainable_weights])
    for i, weight in enumerate(model.trainable_weights):  # a2 = 0.81 w0 + 0.09 w1 + 0.1 w2
        expected = 0.81 * raw[0][i] + 0.09 * raw[1][i] + 0.1 * raw[2][i]
        assert not np.allclose(expected, raw[2][i])
        for copy in strategy.experimental_local_results(average.averages[weight.path]):
            np.testing.assert_allclose(copy.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_eval_inference_and_export_use_the_averages_and_training_resumes_from_the_raw_weights(data, tmp_path):
    train_dir = tmp_path / "run"
    settings = {**SETTINGS, "ema_decay": 0.5}

    def train(**overrides):
        values = dict(train_data_pattern=data["train"], train_dir=str(train_dir), batch_size=16, max_steps=4,
                      progress=False, strategy="mirrored", logical_cpu_devices=2)
        return trainer.train(settings, trainer.TrainOptions(**{**values, **overrides}))

    first = train(eval_data_pattern=data["validate"])
    loaded, _, step = train_dir_lib.load_trained_model(str(train_dir))  # what eval.py and inference.py load
    raw = registry.build_model(settings)
    averages = {v.path: tf.Variable(tf.zeros_like(v)) for v in raw.trainable_weights}
    saved = tf.train.Checkpoint(model=train_dir_lib.model_variables(raw), ema=averages)
    saved.read(first["checkpoint"]).expect_partial()
    for weight, raw_weight in zip(loaded.trainable_weights, raw.trainable_weights):
        np.testing.assert_array_equal(weight.numpy(), averages[weight.path].numpy())
        assert not np.array_equal(weight.numpy(), raw_weight.numpy())
    # The periodic evaluation (inside training) and the export see the averages, as eval.py does.
    reader = registry.make_reader(settings)
    alone = evaluation.evaluate(loaded, reader.dataset(data["validate"], 16), 16, cli.CLASSES,
                                losses.get_loss("CrossEntropyLoss"))
    assert first["eval"]["gap"] == pytest.approx(alone["gap"], rel=1e-5)
    records = tf.constant([r.numpy() for r in tf.data.TFRecordDataset(readers.list_files(data["validate"]))][:5])
    served = tf.saved_model.load(first["export"]).signatures["serving_default"](example_bytes=records)
    batch = next(iter(reader.dataset(data["validate"], 5)))
    scores, _ = tf.math.top_k(loaded(evaluation.model_inputs(batch))["predictions"], 20)
    np.testing.assert_allclose(served["predictions"].numpy(), scores.numpy(), rtol=1e-5)
    # Resuming restores the raw weights: a run with nothing left to do ends with the first run's raw weights.
    assert train()["weights"] == first["weights"] != trainer.weights_fingerprint(loaded)
    assert step == 4
