"""The training loop: one tf.function step run with `strategy.run`, for every strategy (default, one device,
mirrored GPUs, multi-worker, TPU). Keras 3 layers and optimizer are created under `strategy.scope()`; the loss is
averaged over the GLOBAL batch with `tf.nn.compute_average_loss`. (Keras 3's `model.fit` does not support
MultiWorkerMirroredStrategy, keras-team/keras#20585, hence the custom loop.)
"""

import dataclasses
import math
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf

import readers
from yt8m_tf import label_stats, losses as losses_lib
from yt8m_tf import registry
from yt8m_tf.training import evaluation, export, optimization, strategy as strategy_lib, summaries
from yt8m_tf.training import train_dir as train_dir_lib


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must see (one line)."""


@dataclasses.dataclass
class TrainOptions:
    """Everything about a run that is not the model (the model settings go to model_flags.json)."""

    train_data_pattern: str
    train_dir: str
    batch_size: int = 1024
    base_learning_rate: float = 0.01
    learning_rate_decay: float = 0.95
    learning_rate_decay_examples: int = 4000000
    warmup_steps: int = 0
    num_epochs: int = 5
    max_steps: int = 0
    optimizer: str = "AdamOptimizer"
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0
    clip_gradient_norm: float = 1.0
    regularization_penalty: float = 1.0
    start_new_model: bool = False
    checkpoint_steps: int = 1000
    keep_checkpoints: int = 5
    export_model_steps: int = 0
    log_steps: int = 100
    num_readers: int = 8
    shuffle_buffer: int = 1024
    strategy: str = "auto"
    tpu: str = ""
    jit_compile: bool = False
    mixed_precision: str = "none"
    eval_data_pattern: str = ""
    eval_batches: int = 0
    seed: int = 0
    progress: bool = True
    skip_corrupt_records: bool = False
    input_cache_dir: str = ""
    top_k: int = 20
    logical_cpu_devices: int = 0
    label_stats_dir: str = ""
    deterministic: bool = False


def _batch_gap(predictions, labels, k=20):
    """GAP@k of one batch, in-graph (the training-batch summary the starter code logged)."""
    scores, indices = tf.math.top_k(predictions, k=min(k, predictions.shape[-1]))
    hits = tf.reshape(tf.gather(labels, indices, batch_dims=1), [-1])
    order = tf.argsort(tf.reshape(scores, [-1]), direction="DESCENDING", stable=True)
    hits = tf.gather(hits, order)
    precision = tf.cumsum(hits) / tf.range(1.0, tf.cast(tf.size(hits), tf.float32) + 1.0)
    return tf.math.divide_no_nan(tf.reduce_sum(precision * hits), tf.reduce_sum(labels))


def per_example_loss(loss_fn, labels, outputs):
    """(B,) loss of the model's outputs; for an ensemble h (`member_predictions`) the mean of every member's loss
    on its own predictions, so that each member is trained as if alone."""
    if "member_predictions" not in outputs:
        return loss_fn(labels, tf.cast(outputs["predictions"], tf.float32))
    members = tf.unstack(tf.cast(outputs["member_predictions"], tf.float32), axis=1)
    return tf.add_n([loss_fn(labels, member) for member in members]) / len(members)


def train(settings, options):
    """Trains the model described by `settings` (a plain dict, see yt8m_tf.registry) as `options` say.
    Returns a dict with the final step, loss and paths."""
    if options.logical_cpu_devices > 1:
        strategy_lib.split_cpu(options.logical_cpu_devices)
    keras.utils.set_random_seed(options.seed)
    if options.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(options.mixed_precision)

    # ---- set up the strategy and the input --------------------------------------------------------------------
    strategy = strategy_lib.make_strategy(options.strategy, options.tpu)
    task_index, num_workers, is_chief = strategy_lib.worker_info(strategy)
    reader = registry.make_reader(settings)
    files = readers.list_files(options.train_data_pattern)
    check_input(options.train_data_pattern, files, options.skip_corrupt_records, "--train_data_pattern")
    if options.eval_data_pattern:
        check_input(options.eval_data_pattern, readers.list_files(options.eval_data_pattern),
                    options.skip_corrupt_records, "--eval_data_pattern")
    global_batch = options.batch_size
    if global_batch % strategy.num_replicas_in_sync:
        raise TrainingError(f"--batch_size {global_batch} must be a multiple of the "
                            f"{strategy.num_replicas_in_sync} replicas")
    num_examples = readers.files.count_records(files)
    total_steps = options.max_steps or (
        options.num_epochs * num_examples // global_batch if num_examples and options.num_epochs else 0)
    if num_workers > 1 and not total_steps:
        raise TrainingError("multi-worker training needs --max_steps when the number of examples is not countable")
    corrupt = readers.CorruptRecordCounter() if options.skip_corrupt_records else None

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(global_batch)
        data = reader.dataset(options.train_data_pattern, per_replica, shuffle=True,
                              num_epochs=None if total_steps else options.num_epochs,
                              num_readers=options.num_readers, drop_remainder=True,
                              shuffle_buffer=options.shuffle_buffer, seed=options.seed + context.input_pipeline_id,
                              shard=(context.input_pipeline_id, context.num_input_pipelines), skip_corrupt=corrupt,
                              deterministic=options.deterministic, cache_dir=options.input_cache_dir or None)
        return data.map(evaluation.model_inputs)

    distributed = strategy.distribute_datasets_from_function(dataset_fn)  # checks the first record's layout

    # ---- the input is usable: only now is --train_dir written (checked or created, model_flags.json) ---------------
    train_dir_lib.prepare(options.train_dir, settings, options.start_new_model, is_chief)
    write_dir = options.train_dir if is_chief else tempfile.mkdtemp(prefix=f"yt8m-worker{task_index}-")

    # ---- create the model, the loss and the optimizer ------------------------------------------------------------
    with strategy.scope():
        stats = label_stats.for_training(settings, options, files) if registry.needs_label_stats(settings) else {}
        model = registry.build_model(settings, jit_compile=options.jit_compile, **stats)
        loss_fn = losses_lib.get_loss(settings["label_loss"], **registry.loss_kwargs(settings))
        center_loss = registry.build_center_loss(settings)
        schedule = optimization.learning_rate_schedule(
            options.base_learning_rate, options.learning_rate_decay, options.learning_rate_decay_examples,
            global_batch, options.warmup_steps)
        optimizer = optimization.make_optimizer(
            options.optimizer, schedule, options.clip_gradient_norm, options.weight_decay,
            epsilon=options.adam_epsilon, mixed_precision=options.mixed_precision)
        registry.build_for_input(model, settings, center_loss)
        optimizer.build(model.trainable_variables)
        trackables = {"optimizer": optimizer}
        if center_loss is not None:
            trackables["center_loss"] = {v.path: v for v in center_loss.weights}
        checkpoint = train_dir_lib.make_checkpoint(model, **trackables)
    manager = tf.train.CheckpointManager(checkpoint, write_dir, max_to_keep=options.keep_checkpoints,
                                         checkpoint_name=train_dir_lib.CHECKPOINT_NAME)
    if is_chief:
        removed = train_dir_lib.remove_partial_checkpoints(options.train_dir)
        if removed:
            print(f"removed {len(removed)} partial checkpoint file(s) an interrupted save left: {', '.join(removed)}",
                  flush=True)
        check_disk_space(options, model, optimizer, center_loss)
    # Every worker restores the chief's latest checkpoint: after a failure (a worker killed or preempted) restarting
    # all workers resumes from it with equal weights and the step count continuing (what Keras' BackupAndRestore
    # does for model.fit, which cannot run MultiWorkerMirroredStrategy in Keras 3).
    latest = train_dir_lib.latest_checkpoint(options.train_dir)
    if latest:
        try:
            checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise train_dir_lib.TrainDirError(
                f"checkpoint '{latest}' cannot be restored into the model that model_flags.json describes "
                f"({str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__}); use "
                "another --train_dir or --start_new_model") from None
        if is_chief:
            print(f"resumed from {latest} at step {int(optimizer.iterations.numpy())}", flush=True)

    # ---- the step ---------------------------------------------------------------------------------------------
    penalty = float(options.regularization_penalty)
    center_lambda = float(settings.get("center_loss_lambda", 0.0))

    @tf.function(jit_compile=options.jit_compile)
    def replica_step(batch):
        labels = batch["labels"]
        with tf.GradientTape() as tape:
            outputs = model(batch, training=True)
            predictions = tf.cast(outputs["predictions"], tf.float32)
            per_example = per_example_loss(loss_fn, labels, outputs)
            if center_loss is not None:
                per_example += center_lambda * center_loss(outputs["embedding"], labels, training=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            total = loss
            if model.losses and penalty:
                total += penalty * tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(total)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        replicas = float(strategy.num_replicas_in_sync)
        hit_at_one = tf.gather(labels, tf.argmax(predictions, axis=1), batch_dims=1)
        return {"loss": loss,
                "hit_at_one": tf.reduce_sum(hit_at_one) / float(global_batch),
                "gap": _batch_gap(predictions, labels, options.top_k) / replicas}

    @tf.function
    def train_step(iterator):
        results = strategy.run(replica_step, args=(next(iterator),))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in results.items()}

    # What a classifier derives from its training memory with the current weights (KnnMemory's output-space keys)
    # is brought up to date before every checkpoint and export, on every replica.
    refresh_memory = getattr(model.classifier, "refresh_memory", None)
    refresh_step = tf.function(lambda: strategy.run(refresh_memory)) if refresh_memory else lambda: None

    # ---- the loop ---------------------------------------------------------------------------------------------
    writer = tf.summary.create_file_writer(os.path.join(write_dir, "train")) if is_chief else None
    eval_writer = tf.summary.create_file_writer(os.path.join(write_dir, "eval")) if is_chief else None
    step = int(optimizer.iterations.numpy())
    progress = keras.utils.Progbar(total_steps or None, stateful_metrics=["loss", "gap", "hit_at_one", "examples/s"],
                                   verbose=1 if options.progress and is_chief else 0)
    iterator = iter(distributed)
    last = {"loss": float("nan")}
    started, window_start, window_step = time.time(), time.time(), step

    def save(step):
        refresh_step()
        if not all_finite(model.weights):
            raise TrainingError(f"a weight became NaN or inf at step {step} (the loss was finite); not saved. The "
                                f"latest checkpoint ({manager.latest_checkpoint}) holds the last finite weights: "
                                "lower --base_learning_rate or keep --clip_gradient_norm")
        try:
            manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            raise TrainingError(f"cannot write the checkpoint of step {step} to '{write_dir}' "
                                f"({train_dir_lib.reason(e)}); the latest complete checkpoint is "
                                f"{manager.latest_checkpoint}") from None
        if options.eval_data_pattern and is_chief:
            run_eval(step)

    def run_eval(step):
        data = reader.dataset(options.eval_data_pattern, options.batch_size, shuffle=False)
        results = evaluation.evaluate(model, data, reader.num_classes, loss_fn, options.top_k,
                                      max_batches=options.eval_batches or None)
        print(f"step {step} eval: " + " ".join(f"{k} {v:.4f}" for k, v in results.items() if k != "num_examples"))
        summaries.write_scalars(eval_writer, step, {k: results[k] for k in evaluation.SUMMARY_KEYS})

    while not total_steps or step < total_steps:
        try:
            results = train_step(iterator)
        except tf.errors.OutOfRangeError:
            break
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise TrainingError(readers.describe_error(e, files)) from None
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                tf.errors.DeadlineExceededError) as e:
            if num_workers <= 1:
                raise
            raise TrainingError(f"another worker was lost at step {step + 1} ({type(e).__name__}: "
                                f"{train_dir_lib.reason(e)[:200]}); restart all workers: they resume from the "
                                f"latest checkpoint ({train_dir_lib.latest_checkpoint(options.train_dir)})") from None
        step += 1
        last = {k: float(v) for k, v in results.items()}
        if not math.isfinite(last["loss"]):
            raise TrainingError(f"the loss became {last['loss']} at step {step}; training stopped (NaN or inf in the "
                                "input features, or a learning rate too high). The latest checkpoint "
                                f"({manager.latest_checkpoint}) holds the last finite weights.")
        if step % options.log_steps == 0 or step == total_steps:
            now = time.time()
            speed = (step - window_step) * global_batch / max(now - window_start, 1e-9)
            window_start, window_step = now, step
            if writer is not None:
                summaries.write_scalars(writer, step, {**last, "learning_rate": float(schedule(step)),
                                                       "examples_per_second": speed})
            if not options.progress and is_chief:
                print(f"step {step}: loss {last['loss']:.4f} gap {last['gap']:.4f} "
                      f"hit@1 {last['hit_at_one']:.3f} {speed:.0f} examples/s", flush=True)
            last["examples/s"] = speed
        progress.update(step, [(k, v) for k, v in last.items()])
        if options.checkpoint_steps and step % options.checkpoint_steps == 0:
            save(step)
        if options.export_model_steps and step % options.export_model_steps == 0:
            refresh_step()  # on every worker: the replicas refresh together
            if is_chief:
                export_model(model, settings, options.train_dir, step)

    if step == 0:
        raise TrainingError(f"no training batch of {global_batch} videos could be read from "
                            f"'{options.train_data_pattern}' (fewer videos than --batch_size?)")
    if manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f"-{step}"):
        save(step)
    export_path = export_model(model, settings, options.train_dir, step) if is_chief else None
    capacity_note = getattr(model.classifier, "capacity_note", lambda: None)()
    if capacity_note and is_chief:
        print(f"note: {capacity_note}", flush=True)
    if corrupt is not None and is_chief:
        print(corrupt.summary())
    if not is_chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    return {"step": step, "loss": last["loss"], "seconds": time.time() - started,
            "checkpoint": manager.latest_checkpoint, "export": export_path, "weights": weights_fingerprint(model)}


def check_input(data_pattern, files, skip_corrupt, flag):
    """Training and evaluation data must have labels, and (unless corrupt records are skipped) local files must end
    with a whole record: fails now, naming the flag or the file, instead of after hours of work."""
    if not readers.has_labels(data_pattern):
        raise TrainingError(f"{flag} '{data_pattern}' has no labels (Kaggle test files?): training and evaluation "
                            "need labelled files; inference.py writes predictions for unlabelled ones")
    if not skip_corrupt:
        readers.files.check_truncation(files)


def all_finite(variables):
    floats = [v for v in variables if "float" in str(v.dtype)]
    return bool(tf.reduce_all([tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32))) for v in floats]))


def _bytes(variables):
    return sum(int(math.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


def check_disk_space(options, model, optimizer, center_loss=None):
    """A local --train_dir must hold --keep_checkpoints checkpoints (+ the one being written) and the exports the
    run will write: known from the variable sizes, so a full disk fails now rather than hours later."""
    train_dir = options.train_dir
    if "://" in train_dir or not os.path.isdir(train_dir):
        return
    checkpoint = _bytes(model.weights) + _bytes(optimizer.variables) + (
        _bytes(center_loss.weights) if center_loss is not None else 0)
    exports = 1
    if options.export_model_steps and options.max_steps:
        exports += options.max_steps // options.export_model_steps
    existing = sum(os.path.getsize(os.path.join(train_dir, name)) for name in os.listdir(train_dir)
                   if name.startswith(train_dir_lib.CHECKPOINT_NAME + "-"))
    needed = (options.keep_checkpoints + 1) * checkpoint + exports * _bytes(model.weights) - existing
    train_dir_lib.check_free_space(train_dir, needed, f"{options.keep_checkpoints} checkpoints of "
                                   f"{checkpoint / 2**20:.1f} MiB (--keep_checkpoints) and {exports} export(s)")


def weights_fingerprint(model):
    """A number that differs when any weight differs (compares replicas and workers in tests and logs)."""
    return float(sum(tf.reduce_sum(tf.abs(tf.cast(v, tf.float64)) * (i + 1)).numpy()
                     for i, v in enumerate(model.weights)))


def export_model(model, settings, train_dir, step):
    path = os.path.join(train_dir, "export", f"step_{step}")
    try:
        return export.export(model, settings, path)
    except (tf.errors.OpError, OSError) as e:
        raise TrainingError(f"cannot write the export of step {step} to '{path}' ({train_dir_lib.reason(e)}); "
                            "the checkpoints in --train_dir are complete: rerun train.py to export again") from None
