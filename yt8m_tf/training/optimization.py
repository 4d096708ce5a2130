"""Optimizer and learning-rate schedule from the starter code's flags (one place)."""

import keras

# The starter code names TF1 optimizer classes; Keras names work too.
OPTIMIZERS = {
    "AdamOptimizer": "adam", "adam": "adam",
    "AdamWOptimizer": "adamw", "adamw": "adamw",
    "GradientDescentOptimizer": "sgd", "sgd": "sgd",
    "MomentumOptimizer": "momentum", "momentum": "momentum",
    "AdagradOptimizer": "adagrad", "adagrad": "adagrad",
    "RMSPropOptimizer": "rmsprop", "rmsprop": "rmsprop",
}


def learning_rate_schedule(base_learning_rate, learning_rate_decay, learning_rate_decay_examples, batch_size,
                           warmup_steps=0):
    """lr = base * decay ** floor(step * batch_size / decay_examples), the starter code's staircase decay
    (the paper: x0.95 every 1.5M examples), optionally after a linear warmup."""
    decay_steps = max(1, int(float(learning_rate_decay_examples) // int(batch_size)))
    schedule = keras.optimizers.schedules.ExponentialDecay(
        base_learning_rate, decay_steps=decay_steps, decay_rate=learning_rate_decay, staircase=True)
    if warmup_steps and warmup_steps > 0:
        return WarmupSchedule(schedule, int(warmup_steps))
    return schedule


@keras.saving.register_keras_serializable(package="yt8m_tf")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 over `warmup_steps`, then `schedule`."""

    def __init__(self, schedule, warmup_steps):
        self.schedule = schedule
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        ramp = keras.ops.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return ramp * self.schedule(step)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "warmup_steps": self.warmup_steps}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["warmup_steps"])


def _summed_gradients(cls):
    """`cls` for gradients that the caller has already summed over the replicas.

    Keras 3 optimizers sum the replicas' gradients inside `apply_gradients` (`_all_reduce_sum_gradients`), after
    clipping them replica by replica and, under a loss-scale optimizer, after deciding on one replica whether they
    are finite. The training step (`yt8m_tf.training.step.TrainStep`) sums them first, so that clipping, the finite
    check and the update all see the global batch's gradient; the optimizer's own sum is then the identity.
    """
    if not hasattr(cls, "_all_reduce_sum_gradients"):  # a Keras version that moved the hook: fail, never sum twice
        raise RuntimeError(f"keras.optimizers.{cls.__name__} has no _all_reduce_sum_gradients (Keras "
                           f"{keras.__version__}); the training step cannot hand it summed gradients")
    return type(cls.__name__, (cls,), {"_all_reduce_sum_gradients": lambda self, grads_and_vars: list(grads_and_vars)})


def make_optimizer(name, learning_rate, clip_gradient_norm=0.0, weight_decay=0.0, beta_1=0.9, beta_2=0.999,
                   epsilon=1e-8, momentum=0.9, mixed_precision="none"):
    """A Keras 3 optimizer that takes gradients ALREADY SUMMED over the replicas (`TrainStep` does it; outside a
    multi-replica strategy there is nothing to sum). `clip_gradient_norm` clips each summed gradient tensor by its
    own norm, as the starter code's `clip_gradient_norms` did to its merged tower gradients, so the result does not
    depend on the number of replicas. mixed_float16 wraps it in a LossScaleOptimizer, whose finite check then sees
    the summed gradients: an overflow on any replica skips the step on all of them."""
    if name not in OPTIMIZERS:
        raise ValueError(f"--optimizer '{name}' is not one of {', '.join(OPTIMIZERS)}")
    kind = OPTIMIZERS[name]
    common = {"learning_rate": learning_rate}
    if clip_gradient_norm and clip_gradient_norm > 0:
        common["clipnorm"] = float(clip_gradient_norm)
    if kind == "adam":
        cls, extra = keras.optimizers.Adam, {"beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon}
    elif kind == "adamw":
        cls, extra = keras.optimizers.AdamW, {"weight_decay": weight_decay, "beta_1": beta_1, "beta_2": beta_2,
                                              "epsilon": epsilon}
    elif kind == "sgd":
        cls, extra = keras.optimizers.SGD, {}
    elif kind == "momentum":
        cls, extra = keras.optimizers.SGD, {"momentum": momentum}
    elif kind == "adagrad":
        cls, extra = keras.optimizers.Adagrad, {}
    else:
        cls, extra = keras.optimizers.RMSprop, {}
    optimizer = _summed_gradients(cls)(**extra, **common)
    if mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
