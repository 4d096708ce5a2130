"""What lives in --train_dir besides checkpoints: the model settings (model_flags.json, as the starter code wrote),
and the rules for starting over or resuming."""

import datetime
import json
import os

import tensorflow as tf

SETTINGS_FILE = "model_flags.json"
CHECKPOINT_NAME = "model.ckpt"


class TrainDirError(ValueError):
    """A --train_dir that cannot be used as asked; the message is one line."""


def settings_path(train_dir):
    return os.path.join(train_dir, SETTINGS_FILE)


def read_settings(train_dir):
    """The model settings a --train_dir was trained with."""
    path = settings_path(train_dir)
    if not tf.io.gfile.exists(path):
        raise TrainDirError(f"--train_dir '{train_dir}' has no {SETTINGS_FILE}: it holds no model trained by train.py")
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_json(path, value):
    """Atomic JSON write (temp name, then rename), so a killed run never leaves half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        json.dump(value, f, indent=2, sort_keys=True)
    tf.io.gfile.rename(tmp, path, overwrite=True)


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
        previous = read_settings(train_dir)
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
            raise TrainDirError(f"cannot write to --train_dir '{train_dir}': {getattr(e, 'message', e)}") from None


def latest_checkpoint(train_dir):
    return tf.train.latest_checkpoint(train_dir)


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


def make_checkpoint(model, **trackables):
    """The tf.train.Checkpoint of a model (by weight path) and of other trackables (optimizer, center loss)."""
    return tf.train.Checkpoint(model=model_variables(model), **trackables)


def checkpoint_step(path):
    """model.ckpt-1234 -> 1234."""
    return int(path.rsplit("-", 1)[1])


def load_trained_model(train_dir, checkpoint=None, jit_compile=False):
    """(model, settings, step) from a --train_dir written by train.py: its model_flags.json rebuilds the model and
    the latest (or the given) checkpoint fills it."""
    from yt8m_tf import registry  # the registry imports the model zoo; train_dir stays importable without it

    settings = read_settings(train_dir)
    path = checkpoint or latest_checkpoint(train_dir)
    if not path:
        raise TrainDirError(f"--train_dir '{train_dir}' has no checkpoint yet (train.py writes one every "
                            "--checkpoint_steps steps and at the end)")
    model = registry.build_model(settings, jit_compile=jit_compile)
    try:
        make_checkpoint(model).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise TrainDirError(f"checkpoint '{path}' does not fit the model in {SETTINGS_FILE} "
                            f"({str(e).splitlines()[0][:200]})") from None
    return model, settings, checkpoint_step(path)
