"""What lives in --train_dir besides checkpoints: the model settings (model_flags.json, as the starter code wrote),
and the rules for starting over or resuming."""

import datetime
import json
import os
import shutil

import tensorflow as tf

from yt8m_tf import atomic
from yt8m_tf.atomic import reason

SETTINGS_FILE = "model_flags.json"
CHECKPOINT_NAME = "model.ckpt"


class TrainDirError(ValueError):
    """A --train_dir that cannot be used as asked; the message is one line."""


def settings_path(train_dir):
    return os.path.join(train_dir, SETTINGS_FILE)


def has_settings(train_dir):
    return bool(train_dir) and tf.io.gfile.exists(settings_path(train_dir))


def read_settings(train_dir):
    """The model settings a --train_dir was trained with."""
    path = settings_path(train_dir)
    if not tf.io.gfile.exists(path):
        raise TrainDirError(f"--train_dir '{train_dir}' has no {SETTINGS_FILE}: it holds no model trained by train.py")
    return read_json(path)


def read_json(path):
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_json(path, value, what="file"):
    """JSON written atomically (yt8m_tf.atomic), so a killed run never leaves half a file."""
    with atomic.AtomicFile(path, "w", what) as f:
        f.write(json.dumps(value, indent=2, sort_keys=True))


def check_free_space(directory, needed_bytes, what, flag="--train_dir"):
    """For a local `directory`: fails up front when the disk has less than `needed_bytes` free."""
    if "://" in directory or not os.path.isdir(directory):
        return
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise TrainDirError(f"{flag} '{directory}' has {free / 2**20:.1f} MiB free but {what} need about "
                            f"{needed_bytes / 2**20:.1f} MiB; free some space or use another directory")


def prepare(train_dir, settings, start_new_model=False, is_chief=True):
    """Checks (and for the chief, writes) --train_dir before any work is spent.

    Resuming needs the same model settings; --start_new_model moves an existing directory aside (the starter code
    deleted it; nothing a user trained is deleted here) and starts from step 0.
    """
    exists = tf.io.gfile.exists(settings_path(train_dir))
    if exists and start_new_model and is_chief:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        backup = f"{train_dir.rstrip('/')}.replaced-{stamp}"
        tf.io.gfile.rename(train_dir, backup)
        print(f"--start_new_model: moved the previous '{train_dir}' to '{backup}'")
        exists = False
    if exists and not start_new_model:
        from yt8m_tf import registry  # settings a model_flags.json predates were trained with LATER_DEFAULTS

        previous = {**registry.LATER_DEFAULTS, **read_settings(train_dir)}
        changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
        if changed:
            diff = ", ".join(f"{k}: {previous.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise TrainDirError(f"--train_dir '{train_dir}' holds a model trained with other settings ({diff}); "
                                "use another --train_dir or --start_new_model")
    if is_chief:
        try:
            tf.io.gfile.makedirs(train_dir)
            write_json(settings_path(train_dir), settings)
        except (tf.errors.OpError, OSError) as e:
            raise TrainDirError(f"cannot write to --train_dir '{train_dir}': {reason(e)}") from None


def remove_partial_checkpoints(train_dir):
    """Removes what a save killed midway can leave, so that every checkpoint file in --train_dir is complete.

    A checkpoint counts once the `checkpoint` file records it: TensorFlow writes the data, then the `.index`, then
    rewrites the `checkpoint` file atomically, so the latest recorded checkpoint is always complete. A kill in
    between leaves files that are not recorded: `model.ckpt-N_temp/` directories, a checkpoint newer than the
    latest recorded one (possibly with a half-written `.index`), or `.data` files whose `.index` an interrupted
    rotation already deleted. They are removed here (the run resumes from the latest recorded checkpoint and would
    overwrite them anyway). Call it from the one process that writes --train_dir (the chief), before it writes.
    Returns the removed names.
    """
    if not tf.io.gfile.isdir(train_dir):
        return []
    names = [n.rstrip("/") for n in tf.io.gfile.listdir(train_dir)]
    indexed = {n[:-len(".index")] for n in names if n.endswith(".index")}
    latest = latest_checkpoint(train_dir)
    recorded = tf.io.gfile.exists(os.path.join(train_dir, "checkpoint"))
    if recorded and latest is None:  # a `checkpoint` file naming no existing checkpoint: touch nothing but temps
        newest = None
    else:
        newest = checkpoint_step(latest) if latest else -1
    removed = []
    for name in names:
        if not name.startswith(CHECKPOINT_NAME + "-"):
            continue
        path = os.path.join(train_dir, name)
        if name.endswith("_temp"):
            tf.io.gfile.rmtree(path)
            removed.append(name)
            continue
        prefix = name.split(".data-")[0][:-len(".index")] if name.endswith(".index") else name.split(".data-")[0]
        try:
            step = checkpoint_step(prefix)
        except ValueError:
            continue
        if (newest is not None and step > newest) or (".data-" in name and prefix not in indexed):
            tf.io.gfile.remove(path)
            removed.append(name)
    return sorted(removed)


def latest_checkpoint(train_dir):
    """The latest checkpoint the `checkpoint` file of --train_dir records, always inside --train_dir: a recorded
    path elsewhere (an absolute path in a copied or moved directory, or a crafted file) is looked up by its name
    in --train_dir, so nothing outside the directory the user named is ever read. None when there is none."""
    state = tf.train.get_checkpoint_state(train_dir)
    if state is None or not state.model_checkpoint_path:
        return None
    path = os.path.join(train_dir, os.path.basename(state.model_checkpoint_path.rstrip("/")))
    return path if tf.io.gfile.exists(path + ".index") else None


def inside(train_dir, checkpoint):
    """`checkpoint` (a path from a `checkpoint` file) as the checkpoint of that name in --train_dir."""
    return os.path.join(train_dir, os.path.basename(str(checkpoint).rstrip("/")))


def model_variables(model):
    """{variable path: variable} of every model weight.

    Checkpoints and exports track the model through this dict, not through Keras attributes: Keras 3 layers keep
    sub-layers held in lists (stacked LSTMs, MLP layers) out of TensorFlow's object graph, so
    `tf.train.Checkpoint(model=model)` would silently skip their weights. Paths are stable because the registry
    names the model and its g / h / C layers explicitly.
    """
    variables = {v.path: v for v in model.weights}
    if len(variables) != len(model.weights):
        raise ValueError(f"duplicate weight paths in {model.name}: {sorted(v.path for v in model.weights)}")
    return variables


def make_checkpoint(model, averaged=False, **trackables):
    """The tf.train.Checkpoint of a model (by weight path) and of other trackables (optimizer, center loss, the
    `ema` averages). `averaged`: the model's trainable weights are read from (restored out of) the `ema` averages
    of a run with --ema_decay instead of the raw weights."""
    variables = model_variables(model)
    if not averaged:
        return tf.train.Checkpoint(model=variables, **trackables)
    trainable = {v.path for v in model.trainable_weights}
    return tf.train.Checkpoint(model={p: v for p, v in variables.items() if p not in trainable},
                               ema={p: v for p, v in variables.items() if p in trainable}, **trackables)


def checkpoint_step(path):
    """model.ckpt-1234 -> 1234."""
    return int(path.rsplit("-", 1)[1])


def init_source(init_from):
    """(checkpoint path, its run's model settings) of --init_from: a --train_dir (its latest checkpoint) or a
    checkpoint prefix inside one."""
    if tf.io.gfile.exists(init_from + ".index"):
        directory, path = os.path.dirname(init_from) or ".", init_from
    else:
        directory, path = init_from, latest_checkpoint(init_from)
    try:
        source = read_settings(directory)
    except TrainDirError:
        raise TrainDirError(f"--init_from '{init_from}' is neither a --train_dir written by train.py nor a "
                            "checkpoint in one") from None
    if not path:
        raise TrainDirError(f"--init_from '{init_from}' has no checkpoint yet")
    return path, source


def init_checkpoint(init_from, settings):
    """(checkpoint path, its run's settings) that a new run starts from (--init_from, `init_source`), after
    checking that the run's model settings are `settings` except those that change no weight
    (`registry.WEIGHTLESS_SETTINGS`)."""
    from yt8m_tf import registry

    path, source = init_source(init_from)
    source = {**registry.LATER_DEFAULTS, **source}
    differ = sorted(k for k in set(source) | set(settings)
                    if k not in registry.WEIGHTLESS_SETTINGS and source.get(k) != settings.get(k))
    if differ:
        key = differ[0]
        raise TrainDirError(f"--init_from '{init_from}' holds a model with other settings than this run's, first "
                            f"{key}: {source.get(key)!r} there, {settings.get(key)!r} here")
    return path, source


def load_trained_model(train_dir, checkpoint=None, jit_compile=False):
    """(model, settings, step) from a --train_dir written by train.py: its model_flags.json rebuilds the model and
    the latest (or the given) checkpoint fills it (with the weight averages of a run with --ema_decay)."""
    from yt8m_tf import registry  # the registry imports the model zoo; train_dir stays importable without it

    settings = read_settings(train_dir)
    path = inside(train_dir, checkpoint) if checkpoint else latest_checkpoint(train_dir)
    if not path:
        raise TrainDirError(f"--train_dir '{train_dir}' has no checkpoint yet (train.py writes one every "
                            "--checkpoint_steps steps and at the end)")
    model = registry.build_model(settings, jit_compile=jit_compile)
    try:
        averaged = bool(settings.get("ema_decay"))
        make_checkpoint(model, averaged).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise TrainDirError(f"checkpoint '{path}' does not fit the model in {SETTINGS_FILE} "
                            f"({str(e).splitlines()[0][:200]})") from None
    return model, settings, checkpoint_step(path)
