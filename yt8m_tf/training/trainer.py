"""The training loop, one for every strategy (default, one device, mirrored GPUs, multi-worker, TPU).

    train(settings, options)
      set up   the strategy; the input (static shapes, sharded per input worker); --train_dir (written by the chief,
               seen by every worker); the model, loss and optimizer under `strategy.scope()`; restore
      loop     device-side loops of up to --steps_per_loop steps (`step.make_loop` over `step.TrainStep`); between
               them, on the host: logs and summaries, checkpoints (+ periodic evaluation), exports
      finish   the last checkpoint and the export

Keras 3's `model.fit` does not support MultiWorkerMirroredStrategy (keras-team/keras#20585), hence the custom loop.
"""

import contextlib
import math
import os
import secrets
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import readers
from yt8m_tf import label_stats, losses as losses_lib
from yt8m_tf import registry
from yt8m_tf.training import distillation, ema, evaluation, export, optimization, step as step_lib
from yt8m_tf.training import strategy as strategy_lib, summaries
from yt8m_tf.training import train_dir as train_dir_lib
from yt8m_tf.training.options import TrainOptions  # noqa: F401  (the trainer's options, re-exported)

CHIEF_MARKER = ".chief"  # in --train_dir: the chief's random number, read back by every worker


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must see (one line)."""


def train(settings, options):
    """Trains the model described by `settings` (a plain dict, see yt8m_tf.registry) as `options` say.
    Returns a dict with the final step, loss, paths, weights fingerprint and the last periodic evaluation."""
    if options.logical_cpu_devices > 1:
        strategy_lib.split_cpu(options.logical_cpu_devices)
    if options.num_gpu:
        strategy_lib.limit_gpus(options.num_gpu)
    tf.debugging.set_log_device_placement(options.log_device_placement)
    keras.utils.set_random_seed(options.seed)
    if options.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(options.mixed_precision)

    # ---- the strategy and the input ---------------------------------------------------------------------------
    if options.strategy in ("tpu", "auto") and (options.tpu or options.strategy == "tpu"):
        strategy_lib.check_remote_tpu_paths(options.tpu, {
            "train_data_pattern": options.train_data_pattern, "train_dir": options.train_dir,
            "eval_data_pattern": options.eval_data_pattern, "label_stats_dir": options.label_stats_dir,
            "init_from": options.init_from, "teacher_dirs": options.teacher_dirs,
            "teacher_predictions": options.teacher_predictions, "input_cache_dir": options.input_cache_dir})
    strategy = strategy_lib.make_strategy(options.strategy, options.tpu, options.logical_cpu_devices)
    task_index, num_workers, is_chief = strategy_lib.worker_info(strategy)
    reader = registry.make_reader(settings, segment_labels=options.segment_labels)
    if options.segment_labels and settings["label_loss"] == "SoftmaxLoss":
        raise TrainingError("--segment_labels weights each (segment, class) term of the loss, which SoftmaxLoss has "
                            "not: use CrossEntropyLoss, PseudoHuberLoss or HingeLoss")
    if options.segment_labels and options.eval_data_pattern:
        raise TrainingError("--eval_data_pattern evaluates videos; for segments run eval.py --segment_labels beside "
                            "train.py (it evaluates each new checkpoint, with the segment MAP)")
    if options.jit_compile and strategy.num_replicas_in_sync > 1 and not (
            tf.config.list_logical_devices("GPU") or isinstance(strategy, tf.distribute.TPUStrategy)):
        raise TrainingError("--jit_compile on several replicas needs GPUs (XLA cannot place the replicas' "
                            "all-reduce on CPU devices); drop --jit_compile or use one device")
    files = check_inputs(options)
    if options.batch_size % strategy.num_replicas_in_sync:
        raise TrainingError(f"--batch_size {options.batch_size} must be a multiple of the "
                            f"{strategy.num_replicas_in_sync} replicas")
    num_examples = None if options.segment_labels else readers.files.count_records(files)  # segments: not counted
    total_steps = options.max_steps or (
        options.num_epochs * num_examples // options.batch_size if num_examples and options.num_epochs else 0)
    if num_workers > 1 and not total_steps:
        raise TrainingError("multi-worker training needs --max_steps when the number of examples is not countable")
    decay_examples = learning_rate_decay_examples(options, num_examples)
    if num_examples:
        registry.check_memory_capacity(settings, num_examples)
    corrupt = readers.CorruptRecordCounter() if options.skip_corrupt_records else None
    if options.teacher_dirs and options.teacher_predictions:
        raise TrainingError("give --teacher_dirs or --teacher_predictions, not both")
    table = (distillation.PredictionTable(options.teacher_predictions, reader.num_classes)
             if options.teacher_predictions else None)
    teacher_dirs = distillation.check_teachers(options.teacher_dirs, settings)
    init = train_dir_lib.init_checkpoint(options.init_from, settings) if options.init_from else None
    frozen = frozen_parts(options.freeze, settings)
    distributed = training_input(strategy, reader, options, repeat=bool(total_steps), skip_corrupt=corrupt,
                                 teacher_table=table)

    # ---- --train_dir: checked, written by the chief, seen by every worker ------------------------------------------
    train_dir_lib.prepare(options.train_dir, settings, options.start_new_model, is_chief)
    needs_stats = registry.needs_label_stats(settings)
    stats = label_stats.for_training(settings, options, files) if needs_stats and is_chief else {}
    if num_workers > 1:
        check_shared_train_dir(strategy, options.train_dir, is_chief, task_index)
        if needs_stats and not is_chief:  # the chief's, saved in --train_dir before the check above
            stats = label_stats.for_training(settings, options, files)

    # ---- the model, the loss and the optimizer ------------------------------------------------------------------
    fresh = train_dir_lib.latest_checkpoint(options.train_dir) is None  # else it resumes, --init_from or not
    with strategy.scope():
        model = registry.build_model(settings, jit_compile=options.jit_compile, **stats)
        if init and fresh:
            initialize(model, *init, is_chief)
        # Averages of every weight the model trains when nothing is frozen (a frozen one's stays its value), so
        # that eval.py and inference.py find one for each (train_dir.make_checkpoint(averaged=True)).
        average = ema.WeightAverage(model, settings["ema_decay"]) if settings.get("ema_decay") else None
        for part in frozen:  # out of the trainable variables: neither updated nor given optimizer slots
            getattr(model, part).trainable = False
        loss_fn = losses_lib.get_loss(settings["label_loss"], **registry.loss_kwargs(settings))
        center_loss = registry.build_center_loss(settings)
        schedule = optimization.learning_rate_schedule(
            options.base_learning_rate, options.learning_rate_decay, decay_examples, options.batch_size,
            options.warmup_steps)
        optimizer = optimization.make_optimizer(
            options.optimizer, schedule, options.clip_gradient_norm, options.weight_decay,
            epsilon=options.adam_epsilon, mixed_precision=options.mixed_precision)
        registry.build_for_input(model, settings, center_loss)
        optimizer.build(model.trainable_variables)
        teachers = distillation.load_teachers(teacher_dirs)
        trackables = {"optimizer": optimizer}
        if center_loss is not None:
            trackables["center_loss"] = {v.path: v for v in center_loss.weights}
        if average is not None:
            trackables["ema"] = average.averages
        checkpoint = train_dir_lib.make_checkpoint(model, **trackables)
    checkpoints = Checkpoints(checkpoint, options, is_chief, task_index)
    checkpoints.check_disk_space(_bytes(model.weights) + _bytes(optimizer.variables) + (
        _bytes(center_loss.weights) if center_loss is not None else 0) + (
        _bytes(average.averages.values()) if average is not None else 0), _bytes(model.weights))
    step = restore(checkpoint, options.train_dir, optimizer, is_chief)
    train_step = step_lib.TrainStep(model, loss_fn, optimizer, options.batch_size, center_loss,
                                    settings.get("center_loss_lambda", 0.0), options.regularization_penalty,
                                    options.top_k, jit_compile=options.jit_compile, average=average,
                                    teachers=teachers, teacher_weight=options.distillation_weight,
                                    online_distillation=registry.distillation_kwargs(settings))
    loop = step_lib.make_loop(strategy, train_step)
    # What a classifier derives from its training memory with the current weights (KnnMemory's output-space keys)
    # is brought up to date before every checkpoint and export, on every replica.
    refresh_memory = getattr(model.classifier, "refresh_memory", None)
    refresh = tf.function(lambda: strategy.run(refresh_memory)) if refresh_memory else (lambda: None)
    averaged = average.applied if average is not None else contextlib.nullcontext  # what eval and exports see

    def save(step):
        with averaged():
            refresh()
        if not all_finite(model.weights):
            raise TrainingError(f"a weight became NaN or inf at step {step} (the loss was finite); not saved. The "
                                f"latest checkpoint ({checkpoints.latest}) holds the last finite weights: "
                                "lower --base_learning_rate or keep --clip_gradient_norm")
        checkpoints.save(step)
        if not options.eval_data_pattern:
            return None
        with averaged():
            results = evaluate_during_training(strategy, model, reader, loss_fn, options, corrupt)
        if is_chief:
            print(f"step {step} eval: " + " ".join(f"{k} {v:.4f}" for k, v in results.items()
                                                   if k != "num_examples"), flush=True)
            summaries.write_scalars(eval_writer, step, {k: results[k] for k in evaluation.SUMMARY_KEYS})
        return results

    # ---- the loop -----------------------------------------------------------------------------------------------
    writer = tf.summary.create_file_writer(os.path.join(options.train_dir, "train")) if is_chief else None
    eval_writer = tf.summary.create_file_writer(os.path.join(options.train_dir, "eval")) if is_chief else None
    progress = keras.utils.Progbar(total_steps or None, stateful_metrics=["loss", "gap", "hit_at_one", "examples/s"],
                                   verbose=1 if options.progress and is_chief else 0)
    iterator = iter(distributed)
    last, last_eval = {"loss": float("nan")}, None
    saved_step, exported_step, export_path = (step or None), None, None  # decided alike on every worker (no worker may skip a save)
    started, window_start, window_step = time.time(), time.time(), step
    while not total_steps or step < total_steps:
        length = loop_length(step, options, total_steps)
        try:
            sums, done, finite = loop(iterator, tf.constant(length))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise TrainingError(readers.describe_error(e, files)) from None
        except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                tf.errors.DeadlineExceededError) as e:
            if num_workers <= 1:
                raise
            raise TrainingError(f"another worker was lost after step {step} ({type(e).__name__}: "
                                f"{train_dir_lib.reason(e)[:200]}); restart all workers: they resume from the "
                                f"latest checkpoint ({train_dir_lib.latest_checkpoint(options.train_dir)})") from None
        done = int(done)
        if done:  # the optimizer's count: a step mixed_float16 skips (an overflow) does not count, as at resume
            step = int(optimizer.iterations.numpy())
            last = {k: float(v) / done for k, v in sums.items()}
        if not bool(finite):
            raise TrainingError(f"the loss became {last['loss']} at step {step}; training stopped (NaN or inf in the "
                                "input features, or a learning rate too high). The latest checkpoint "
                                f"({checkpoints.latest}) holds the last finite weights.")
        if done and (step % options.log_steps == 0 or step == total_steps or done < length):
            now = time.time()
            speed = (step - window_step) * options.batch_size / max(now - window_start, 1e-9)
            window_start, window_step = now, step
            if writer is not None:
                summaries.write_scalars(writer, step, {**last, "learning_rate": float(schedule(step)),
                                                       "examples_per_second": speed})
            if not options.progress and is_chief:
                print(f"step {step}: loss {last['loss']:.4f} gap {last['gap']:.4f} "
                      f"hit@1 {last['hit_at_one']:.3f} {speed:.0f} examples/s", flush=True)
            last["examples/s"] = speed
        progress.update(step, [(k, v) for k, v in last.items()])
        if done and options.checkpoint_steps and step % options.checkpoint_steps == 0:
            last_eval, saved_step = save(step), step
        if done and options.export_model_steps and step % options.export_model_steps == 0:
            with averaged():
                if saved_step != step:  # save() refreshed these weights at this step already
                    refresh()  # on every worker: the replicas refresh together
                if is_chief:
                    export_path = export_model(model, settings, options.train_dir, step)
            exported_step = step
        if done < length:  # the data ended
            break

    # ---- finish ----------------------------------------------------------------------------------------------------
    if step == 0:
        raise TrainingError(f"no training batch of {options.batch_size} videos could be read from "
                            f"'{options.train_data_pattern}' (fewer videos than --batch_size?)")
    if saved_step != step:
        last_eval = save(step)
    if exported_step != step:
        with averaged():
            export_path = export_model(model, settings, options.train_dir, step) if is_chief else None
    capacity_note = getattr(model.classifier, "capacity_note", lambda: None)()
    if capacity_note and is_chief:
        print(f"note: {capacity_note}", flush=True)
    if corrupt is not None and is_chief:
        print(corrupt.summary())
    checkpoints.close()
    return {"step": step, "loss": last["loss"], "seconds": time.time() - started,
            "checkpoint": checkpoints.latest, "export": export_path, "weights": weights_fingerprint(model),
            "eval": last_eval}


def check_inputs(options):
    """The training files (and the evaluation files) checked before any work: they exist, have labels, and (unless
    corrupt records are skipped) local files end with a whole record. Returns the training files."""
    files = readers.list_files(options.train_data_pattern)
    for flag, pattern, matched in (("--train_data_pattern", options.train_data_pattern, files),
                                   ("--eval_data_pattern", options.eval_data_pattern, None)):
        if pattern:
            check_input(pattern, matched or readers.list_files(pattern), options.skip_corrupt_records, flag)
    return files


def check_input(data_pattern, files, skip_corrupt, flag):
    """Training and evaluation data must have labels, and (unless corrupt records are skipped) local files must end
    with a whole record: fails now, naming the flag or the file, instead of after hours of work."""
    if not readers.has_labels(data_pattern):
        raise TrainingError(f"{flag} '{data_pattern}' has no labels (Kaggle test files?): training and evaluation "
                            "need labelled files; inference.py writes predictions for unlabelled ones")
    if not skip_corrupt:
        readers.files.check_truncation(files)


def learning_rate_decay_examples(options, num_examples):
    """Examples between learning-rate decays: --learning_rate_decay_epochs x the examples when set (presets: the
    same schedule on 28.8k and on 3.9M videos), else --learning_rate_decay_examples."""
    if not options.learning_rate_decay_epochs:
        return options.learning_rate_decay_examples
    if not num_examples:
        raise TrainingError("--learning_rate_decay_epochs needs the number of training examples, which remote or "
                            "very large data and --segment_labels (segments are not counted) do not give: pass "
                            "--learning_rate_decay_examples instead")
    return options.learning_rate_decay_epochs * num_examples


def training_input(strategy, reader, options, repeat, skip_corrupt=None, teacher_table=None):
    """The distributed training dataset: each input worker reads its share of the files (`shard`), shuffled with
    its own seed, in per-replica batches of static shape (`drop_remainder`), forever when `repeat` (the loop stops
    by count) else for --num_epochs (the loop stops at the end of the data); with a `teacher_table`
    (`distillation.PredictionTable`) each batch also holds the teacher's soft targets."""

    def dataset_fn(context):
        data = reader.dataset(options.train_data_pattern, context.get_per_replica_batch_size(options.batch_size),
                              shuffle=True, num_epochs=None if repeat else options.num_epochs,
                              num_readers=options.num_readers, drop_remainder=True,
                              shuffle_buffer=options.shuffle_buffer, seed=options.seed + context.input_pipeline_id,
                              shard=(context.input_pipeline_id, context.num_input_pipelines),
                              skip_corrupt=skip_corrupt, deterministic=options.deterministic,
                              cache_dir=options.input_cache_dir or None)
        if teacher_table is not None:
            data = data.map(teacher_table.add_to)
        local = context.num_replicas_in_sync // context.num_input_pipelines
        if not repeat and local > 1:  # whole rounds only: at the end of the data no replica gets an empty batch
            data = data.batch(local, drop_remainder=True).unbatch()
        return data.map(evaluation.model_inputs)

    return strategy.distribute_datasets_from_function(dataset_fn)  # checks the first record's layout


def check_shared_train_dir(strategy, train_dir, is_chief, task_index):
    """Every worker restores the chief's checkpoints and reads its label statistics from --train_dir, so every
    worker must see the chief's directory: the chief leaves a random number there and every worker reads it back.
    A collective call, so it also waits until the chief has written what the others read."""
    marker = os.path.join(train_dir, CHIEF_MARKER)
    nonce = secrets.randbits(48)
    if is_chief:
        train_dir_lib.write_json(marker, {"nonce": nonce})
    nonce = strategy_lib.broadcast_from_chief(strategy, nonce)
    try:
        seen = train_dir_lib.read_json(marker).get("nonce") == nonce
    except (tf.errors.OpError, OSError, ValueError):
        seen = False
    blind = strategy_lib.count_over_workers(strategy, not seen)
    if blind:
        who = f"worker {task_index} does not" if not seen else f"{blind} other worker(s) do not"
        raise TrainingError(f"{who} see the chief's --train_dir '{train_dir}': every worker must be given one "
                            "directory that all of them share (e.g. gs://bucket/run), or they would train from "
                            "different checkpoints")


class Checkpoints:
    """The run's checkpoints: the chief writes them into --train_dir (keeping --keep_checkpoints); under
    MultiWorkerMirroredStrategy the other workers must save too, into a scratch directory that holds one checkpoint
    at a time and is removed at the end."""

    def __init__(self, checkpoint, options, is_chief, task_index):
        self.is_chief = is_chief
        self.directory = options.train_dir if is_chief else tempfile.mkdtemp(prefix=f"yt8m-worker{task_index}-")
        if is_chief:
            removed = train_dir_lib.remove_partial_checkpoints(options.train_dir)
            if removed:
                print(f"removed {len(removed)} partial checkpoint file(s) an interrupted save left: "
                      f"{', '.join(removed)}", flush=True)
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory,
                                                  max_to_keep=options.keep_checkpoints if is_chief else 1,
                                                  checkpoint_name=train_dir_lib.CHECKPOINT_NAME)
        self.options = options

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def check_disk_space(self, checkpoint_bytes, export_bytes):
        """A local directory must hold the checkpoints it keeps (+ the one being written) and, for the chief, the
        exports the run will write: known from the variable sizes, so a full disk fails now, not hours later."""
        options = self.options
        if not self.is_chief:
            train_dir_lib.check_free_space(self.directory, 2 * checkpoint_bytes, "this worker's scratch checkpoint",
                                           flag="TMPDIR (a non-chief worker's scratch directory)")
            return
        if "://" in self.directory or not os.path.isdir(self.directory):
            return
        exports = 1
        if options.export_model_steps and options.max_steps:
            exports += options.max_steps // options.export_model_steps
        existing = sum(os.path.getsize(os.path.join(self.directory, name)) for name in os.listdir(self.directory)
                       if name.startswith(train_dir_lib.CHECKPOINT_NAME + "-"))
        needed = (options.keep_checkpoints + 1) * checkpoint_bytes + exports * export_bytes - existing
        train_dir_lib.check_free_space(self.directory, needed, f"{options.keep_checkpoints} checkpoints of "
                                       f"{checkpoint_bytes / 2**20:.1f} MiB (--keep_checkpoints) and {exports} "
                                       "export(s)")

    def save(self, step):
        try:
            self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            raise TrainingError(f"cannot write the checkpoint of step {step} to '{self.directory}' "
                                f"({train_dir_lib.reason(e)}); the latest complete checkpoint is "
                                f"{self.latest}") from None

    def close(self):
        if not self.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)


def restore(checkpoint, train_dir, optimizer, is_chief):
    """Restores the chief's latest checkpoint (every worker: after a failure, restarting all workers resumes from it
    with equal weights and the step count continuing, what Keras' BackupAndRestore does for model.fit). Returns the
    step to continue from."""
    latest = train_dir_lib.latest_checkpoint(train_dir)
    if not latest:
        return 0
    try:
        checkpoint.restore(latest).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise train_dir_lib.TrainDirError(
            f"checkpoint '{latest}' cannot be restored into the model that model_flags.json describes "
            f"({str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__}); use "
            "another --train_dir or --start_new_model") from None
    step = int(optimizer.iterations.numpy())
    if is_chief:
        print(f"resumed from {latest} at step {step}", flush=True)
    return step


FREEZABLE = ("pooling", "classifier", "label_processing")


def frozen_parts(freeze, settings):
    """The parts of the model (g, h, C) named by --freeze, checked against what the settings build."""
    parts = [p.strip() for p in freeze.split(",") if p.strip()]
    for part in parts:
        if part not in FREEZABLE:
            raise TrainingError(f"--freeze '{part}' is not one of {', '.join(FREEZABLE)}")
        if part not in registry.model_parts(settings):
            raise TrainingError(f"--freeze {part}: this model has no {part} layer")
    return parts


def initialize(model, path, source, is_chief):
    """A new run's model (--init_from, before any part is frozen) gets the weights of another run's checkpoint (its
    weight averages when it kept them); the optimizer, the step count and the weight averages start afresh."""
    averaged = bool(source.get("ema_decay"))
    try:
        train_dir_lib.make_checkpoint(model, averaged).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise train_dir_lib.TrainDirError(f"--init_from checkpoint '{path}' does not fit this model "
                                          f"({str(e).strip().splitlines()[0][:200]})") from None
    if is_chief:
        print(f"initialised from {path}{' (its weight averages)' if averaged else ''}", flush=True)


def loop_length(step, options, total_steps):
    """Steps of the next device loop: --steps_per_loop, cut short at the next log, checkpoint or export step and
    at the last step, so that those happen exactly where the flags say."""
    length = max(1, options.steps_per_loop)
    for every in (options.log_steps, options.checkpoint_steps, options.export_model_steps):
        if every:
            length = min(length, every - step % every)
    if total_steps:
        length = min(length, total_steps - step)
    return length


def evaluate_during_training(strategy, model, reader, loss_fn, options, skip_corrupt=None):
    """--eval_data_pattern evaluated on the strategy's replicas, as eval.py would evaluate the checkpoint: rounds of
    --batch_size videos over this worker's replicas (every worker evaluates all of it)."""
    replicas = strategy_lib.local_replicas(strategy)
    batch_size = max(1, options.batch_size // replicas)
    data = reader.dataset(options.eval_data_pattern, batch_size, shuffle=False, num_readers=options.num_readers,
                          skip_corrupt=skip_corrupt)
    return evaluation.evaluate(model, data, batch_size, reader.num_classes, loss_fn, options.top_k,
                               max_batches=options.eval_batches * replicas or None,
                               jit_compile=options.jit_compile or isinstance(strategy, tf.distribute.TPUStrategy),
                               strategy=strategy)


def host_values(variables):
    """numpy copies of `variables` (a distributed variable gives its first replica's copy): the checks below run
    on the host, whatever device the weights live on."""
    return [np.asarray(v.numpy()) for v in variables]


def all_finite(variables):
    return all(np.isfinite(value).all() for value in host_values(variables)
               if np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16")


def _bytes(variables):
    return sum(int(math.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


def weights_fingerprint(model):
    """A number that differs when any weight differs (compares replicas and workers in tests and logs)."""
    return float(sum(np.abs(value.astype(np.float64)).sum() * (i + 1)
                     for i, value in enumerate(host_values(model.weights))))


def export_model(model, settings, train_dir, step):
    """The SavedModel of the current weights at train_dir/export/step_N, written from a copy of the model on the
    host (built outside the strategy), so an export never traces variables that live on TPU cores or on several
    devices."""
    path = os.path.join(train_dir, "export", f"step_{step}")
    host = registry.build_model(settings)
    trained = train_dir_lib.model_variables(model)
    for name, variable in train_dir_lib.model_variables(host).items():
        variable.assign(trained[name].numpy())
    try:
        return export.export(host, settings, path)
    except (tf.errors.OpError, OSError) as e:
        raise TrainingError(f"cannot write the export of step {step} to '{path}' ({train_dir_lib.reason(e)}); "
                            "the checkpoints in --train_dir are complete: rerun train.py to export again") from None
