"""Evaluation over a dataset: top-k is computed inside the step (on the accelerator) and the host metrics only see
the B x k scores (`yt8m_tf.metrics.EvaluationMetrics.accumulate_top_k`)."""

import tensorflow as tf

from yt8m_tf import metrics as metrics_lib

STRING_KEYS = ("video_ids",)
SUMMARY_KEYS = ("gap", "map", "hit_at_one", "perr", "loss")


def model_inputs(batch):
    """The tensors a model step consumes (no strings: TPUs cannot take them)."""
    return {k: v for k, v in batch.items() if k not in STRING_KEYS}


def make_eval_step(model, loss_fn, top_k, jit_compile=False):
    """tf.function(batch) -> the top-k outputs plus per-example losses (and the predictions for segment mode)."""

    @tf.function(jit_compile=jit_compile)
    def step(inputs):
        predictions = model(inputs, training=False)["predictions"]
        labels = inputs["labels"]
        outputs = metrics_lib.top_k_step_outputs(predictions, labels, top_k, xla_compatible=jit_compile)
        outputs["loss"] = loss_fn(labels, predictions)
        return outputs

    return step


def evaluate(model, dataset, num_classes, loss_fn, top_k=20, max_batches=None, jit_compile=False, accumulator=None):
    """Runs the model over `dataset` (batch dicts with labels) and returns the metrics dict
    (gap, map, hit_at_one, perr, loss, num_examples)."""
    step = make_eval_step(model, loss_fn, top_k, jit_compile)
    results = accumulator or metrics_lib.EvaluationMetrics(num_classes, top_k=top_k)
    for index, batch in enumerate(dataset):
        if max_batches is not None and index >= max_batches:
            break
        outputs = step(model_inputs(batch))
        loss = outputs.pop("loss")
        results.accumulate_top_k(**{k: v.numpy() for k, v in outputs.items()}, loss=loss.numpy())
    return results.get()
