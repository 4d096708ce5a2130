"""The training step and the device-side loop of steps: the unit the trainer, the benchmarks and the tests share.

`TrainStep(...)` is one optimisation step on one replica's share of the global batch (call it inside
`strategy.run`, or directly on one device); `make_loop(strategy, step)` runs up to N of them per call without
returning to Python, as TPUs need.
"""

import tensorflow as tf

from yt8m_tf import losses
from yt8m_tf.training import distillation

METRICS = ("loss", "hit_at_one", "gap")
_REPLICA_SEED_STRIDE = 1_000_003  # replica r draws with seed + r * stride
_DRAWS_PER_STEP = 1 << 16  # a seed generator's counter advances this much per step (one per draw)


def batch_gap(predictions, labels, k=20):
    """GAP@k of one batch, in-graph (the training-batch summary the starter code logged)."""
    scores, indices = tf.math.top_k(predictions, k=min(k, predictions.shape[-1]))
    hits = tf.reshape(tf.gather(labels, indices, batch_dims=1), [-1])
    order = tf.argsort(tf.reshape(scores, [-1]), direction="DESCENDING", stable=True)
    hits = tf.gather(hits, order)
    precision = tf.cumsum(hits) / tf.range(1.0, tf.cast(tf.size(hits), tf.float32) + 1.0)
    return tf.math.divide_no_nan(tf.reduce_sum(precision * hits), tf.reduce_sum(labels))


def per_example_loss(loss_fn, labels, outputs, teacher=None, teacher_weight=0.0, label_weights=None,
                     online_distillation=None):
    """(B,) loss of the model's outputs; for an ensemble h (`member_predictions`) the mean of every member's loss
    on its own predictions, so that each member is trained as if alone. With `teacher` probabilities (B, C)
    (distillation): (1 - teacher_weight) x the loss + teacher_weight x the cross entropy to the teacher's. With
    `label_weights` (segment ratings) only the weighted (example, class) terms count, in both.

    A NeXtVLAD mixture (outputs with `mixture_logits`) is trained as Lin et al. 2018 Eq. 16: the loss of the
    mixture + the loss of every member + `losses.online_distillation_loss(**online_distillation)`."""
    weighted = {} if label_weights is None else {"label_weights": label_weights}

    def loss(predictions):
        value = loss_fn(labels, predictions, **weighted)
        if teacher is None:
            return value
        return ((1.0 - teacher_weight) * value
                + teacher_weight * losses.cross_entropy(teacher, predictions, **weighted))

    if "member_predictions" not in outputs:
        return loss(tf.cast(outputs["predictions"], tf.float32))
    members = tf.unstack(tf.cast(outputs["member_predictions"], tf.float32), axis=1)
    if "mixture_logits" in outputs:
        return (loss(tf.cast(outputs["predictions"], tf.float32)) + tf.add_n([loss(m) for m in members])
                + losses.online_distillation_loss(outputs["mixture_logits"], outputs["member_logits"],
                                                  **(online_distillation or {})))
    return tf.add_n([loss(member) for member in members]) / len(members)


def seed_states(model):
    """The model's random-number state: its variables that are not weights (Keras seed generators)."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class TrainStep:
    """One training step of `model` on the batch of one replica (`batch` dict with `labels`).

    1. Random draws (dropout, input noise, frame sampling, adaptive noise) are seeded by (the generator's seed from
       `--seed`, the step, the replica): every replica draws its own values, and a rerun with the same `--seed`, or
       a run resumed from a checkpoint, draws the same values at the same step.
    2. Forward pass; per-example losses (`per_example_loss`: one per ensemble member, or a NeXtVLAD mixture's
       Eq. 16 with `online_distillation` = `registry.distillation_kwargs(settings)`; mixed with the cross entropy
       to the `teachers`' predictions, or to the batch's `teacher_predictions`, by `teacher_weight`; only the rated
       pairs when the batch has `label_weights`) averaged over the GLOBAL batch (`tf.nn.compute_average_loss`),
       plus `regularization_penalty` x the layers' losses and the center loss.
    3. The gradients are summed over the replicas (all-reduce) here, then clipped and applied by the optimizer
       (`optimization.make_optimizer`, which expects summed gradients): N replicas compute what one device computes
       on the whole batch, whatever the clipping; under mixed_float16 an overflow on any replica skips the step on
       every replica.
    4. With `average` (`ema.WeightAverage`), the weight averages are updated.

    Returns the replica's shares of the batch metrics (`METRICS`); summed over the replicas they are the global
    batch's mean loss and hit@1 and the replicas' mean GAP@top_k. Call it inside a tf.function (`make_loop`'s, or
    `tf.function(step)` on one device): it is plain Python unless `jit_compile`.
    """

    def __init__(self, model, loss_fn, optimizer, global_batch_size, center_loss=None, center_lambda=0.0,
                 regularization_penalty=1.0, top_k=20, jit_compile=False, average=None, teachers=(),
                 teacher_weight=0.0, online_distillation=None):
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.global_batch_size = int(global_batch_size)
        self.center_loss = center_loss
        self.center_lambda = float(center_lambda)
        self.regularization_penalty = float(regularization_penalty)
        self.top_k = int(top_k)
        self.average = average
        self.teachers = list(teachers)
        self.teacher_weight = float(teacher_weight)
        self.online_distillation = online_distillation
        self._seeds = [(state, int(state.numpy()[0])) for state in seed_states(model)]
        # Plain Python, traced by the caller's tf.function (a nested tf.function cannot hold the gradients'
        # all-reduce on MirroredStrategy); XLA needs its own compiled function.
        self._step = tf.function(self._replica_step, jit_compile=True) if jit_compile else self._replica_step

    def __call__(self, batch):
        return self._step(batch)

    def _seed_replica(self):
        context = tf.distribute.get_replica_context()
        replica = tf.cast(context.replica_id_in_sync_group, tf.int64) if context is not None else 0
        counter = tf.cast(self.optimizer.iterations, tf.int64) * _DRAWS_PER_STEP
        for state, seed in self._seeds:
            state.assign(tf.stack([seed + replica * _REPLICA_SEED_STRIDE, counter]))

    def _replica_step(self, batch):
        self._seed_replica()
        labels = batch["labels"]
        model, optimizer = self.model, self.optimizer
        teacher = batch.get(distillation.TEACHER_KEY)
        weights = batch.get("label_weights")  # segment ratings: only the rated (segment, class) pairs count
        if self.teachers:
            teacher = distillation.teacher_predictions(self.teachers, batch)
        with tf.GradientTape() as tape:
            outputs = model(batch, training=True)
            per_example = per_example_loss(self.loss_fn, labels, outputs, teacher, self.teacher_weight, weights,
                                           self.online_distillation)
            if self.center_loss is not None:
                per_example += self.center_lambda * self.center_loss(outputs["embedding"], labels, training=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
            total = loss
            if model.losses and self.regularization_penalty:
                total += self.regularization_penalty * tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(total)
        variables = model.trainable_variables
        grads = tape.gradient(scaled, variables)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            present = [i for i, g in enumerate(grads) if g is not None]  # a weight without gradient stays None
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
            grads = list(grads)
            for i, g in zip(present, summed):
                grads[i] = g
        optimizer.apply_gradients(zip(grads, variables))
        if self.average is not None:
            self.average.update()
        predictions = tf.cast(outputs["predictions"], tf.float32)
        if weights is not None:  # the metrics of the rated pairs, as eval.py --segment_labels computes them
            predictions, labels = predictions * weights, labels * weights
        replicas = float(tf.distribute.get_strategy().num_replicas_in_sync)
        hit_at_one = tf.gather(labels, tf.argmax(predictions, axis=1), batch_dims=1)
        return {"loss": loss,
                "hit_at_one": tf.reduce_sum(hit_at_one) / float(self.global_batch_size),
                "gap": batch_gap(predictions, labels, self.top_k) / replicas}


def make_loop(strategy, step):
    """tf.function(iterator, num_steps) -> (metric sums, steps run, finite).

    Runs up to `num_steps` steps (a tensor: no retracing) on the device without returning to Python. It stops
    early at the end of the data (`get_next_as_optional`, the end-of-data signal that TPUs support, never an
    exception from the compiled step) or after a step whose loss is not finite (`finite` False; that step's update
    was applied). The sums over the steps run of each of `METRICS`, divided by the steps run, are the loop's means.
    """

    def stacked_step(batch):
        results = step(batch)
        return tf.stack([results[name] for name in METRICS])

    @tf.function
    def loop(iterator, num_steps):
        totals = {name: tf.constant(0.0) for name in METRICS}
        done = tf.constant(0)
        finite = tf.constant(True)
        for _ in tf.range(num_steps):
            batch = iterator.get_next_as_optional()
            if not batch.has_value():
                break
            per_replica = strategy.run(stacked_step, args=(batch.get_value(),))
            summed = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)  # one reduction per step
            totals = {name: totals[name] + summed[i] for i, name in enumerate(METRICS)}
            done += 1
            if not tf.math.is_finite(summed[METRICS.index("loss")]):
                finite = tf.constant(False)
                break
        return totals, done, finite

    return loop
