"""Evaluation over a dataset, on one device or distributed over a strategy's replicas: top-k is computed inside
the step (on the accelerator) and the host metrics only see the B x k scores
(`yt8m_tf.metrics.EvaluationMetrics.accumulate_top_k`)."""

import tensorflow as tf

from yt8m_tf import metrics as metrics_lib
from yt8m_tf.training.strategy import local_replicas

STRING_KEYS = ("video_ids",)
SUMMARY_KEYS = ("gap", "map", "hit_at_one", "perr", "loss")
VALID = "valid"  # the key of the padding mask `evaluate` adds to each batch


def model_inputs(batch):
    """The tensors a model step consumes (no strings: TPUs cannot take them)."""
    return {k: v for k, v in batch.items() if k not in STRING_KEYS}


def make_eval_step(model, loss_fn, top_k, jit_compile=False):
    """tf.function(batch) -> the top-k outputs, per-example losses and the batch's `valid` mask."""

    @tf.function(jit_compile=jit_compile)
    def step(inputs):
        predictions = model(inputs, training=False)["predictions"]
        labels = inputs["labels"]
        outputs = metrics_lib.top_k_step_outputs(predictions, labels, top_k, xla_compatible=jit_compile)
        outputs["loss"] = loss_fn(labels, predictions)
        outputs[VALID] = inputs[VALID]
        return outputs

    return step


def padded_rounds(dataset, batch_size, replicas):
    """`dataset` (batches of at most `batch_size`, the last one possibly partial) as batches of exactly
    `batch_size` with a `valid` mask (False on padding rows), in whole rounds of `replicas` batches (all-padding
    batches complete the last round): every tensor has a static shape and every replica gets a batch each round."""

    def pad(batch):
        size = tf.shape(batch["labels"])[0]
        padded = {k: tf.pad(v, [[0, batch_size - size]] + [[0, 0]] * (len(v.shape) - 1)) for k, v in batch.items()}
        padded = {k: tf.ensure_shape(v, [batch_size] + v.shape[1:]) for k, v in padded.items()}
        padded[VALID] = tf.sequence_mask(size, batch_size)
        return padded

    data = dataset.map(pad)
    if replicas > 1:
        empty = {k: tf.zeros(spec.shape, spec.dtype) for k, spec in data.element_spec.items()}
        data = data.concatenate(tf.data.Dataset.from_tensors(empty).repeat(replicas - 1))
        data = data.batch(replicas, drop_remainder=True).unbatch()
    return data


def evaluate(model, dataset, batch_size, num_classes, loss_fn, top_k=20, max_batches=None, jit_compile=False,
             accumulator=None, strategy=None):
    """Runs the model over `dataset` (batch dicts with labels, at most `batch_size` videos each: the per-replica
    batch the reader was asked for) and returns the metrics dict (gap, map, hit_at_one, perr, loss, num_examples).

    With a `strategy` (created the model's variables) the batches are distributed over its replicas inside
    `strategy.run`: padded to static shapes (`padded_rounds`), the padding masked out of the metrics, so the
    numbers equal one device's. Under MultiWorkerMirroredStrategy every worker must call this with the same data
    (each evaluates all of it; the input workers stay in step).
    """
    strategy = strategy or tf.distribute.get_strategy()
    step = make_eval_step(model, loss_fn, top_k, jit_compile)
    results = accumulator or metrics_lib.EvaluationMetrics(num_classes, top_k=top_k)
    data = dataset.map(model_inputs)
    if max_batches is not None:
        data = data.take(max_batches)
    data = padded_rounds(data, batch_size, local_replicas(strategy))
    distributed = strategy.distribute_datasets_from_function(lambda context: data)
    run = tf.function(lambda batch: strategy.run(step, args=(batch,)))
    for batch in distributed:
        for outputs in strategy.experimental_local_results(run(batch)):
            outputs = {k: v.numpy() for k, v in outputs.items()}
            valid = outputs.pop(VALID)
            if valid.any():
                results.accumulate_top_k(**{k: v[valid] if k != "class_positives" else v
                                            for k, v in outputs.items() if k != "loss"},
                                         loss=outputs["loss"][valid])
    return results.get()
