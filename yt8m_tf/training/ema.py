"""Exponential moving average of the weights (`--ema_decay`; the 2018 winners evaluated their averaged weights)."""

import contextlib

import tensorflow as tf


class WeightAverage:
    """a <- decay * a + (1 - decay) * w for every trainable weight w, after every training step (`TrainStep` calls
    `update`). The averages start at the weights and are saved in checkpoints under `ema/<weight path>`; eval.py,
    inference.py and the exports use them (`train_dir.load_trained_model`), training resumes from the raw weights.

    Create it under the strategy's scope: each replica then updates its own copy from its own (identical) weights,
    which needs no communication. A decay d averages over about 1 / (1 - d) steps (half-life ln 0.5 / ln d).
    """

    def __init__(self, model, decay):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.weights = list(model.trainable_weights)
        self.averages = {v.path: tf.Variable(v.value, trainable=False, name="ema",
                                             aggregation=tf.VariableAggregation.NONE) for v in self.weights}

    def update(self):
        for weight in self.weights:
            average = self.averages[weight.path]
            average.assign(self.decay * average + (1.0 - self.decay) * tf.cast(weight.value, average.dtype))

    @contextlib.contextmanager
    def applied(self):
        """Inside the block the model holds the averages (on every replica); the raw weights come back after it."""
        raw = [weight.numpy() for weight in self.weights]
        for weight in self.weights:
            weight.assign(self.averages[weight.path])
        try:
            yield
        finally:
            for weight, value in zip(self.weights, raw):
                weight.assign(value)
