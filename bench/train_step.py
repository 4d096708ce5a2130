"""Training-step throughput per model family on this CPU, as a fraction of the measured fp32 matmul peak (issue #6,
part 2).

    python bench/train_step.py [--repeats 4] [--models moe,mlp,logistic,lstm]

Each model is built the way the trainer builds it (yt8m_tf/training/trainer.py): `registry.build_model` from the
flag defaults (`flags.default_model_settings`) plus the overrides below, `losses.get_loss`,
`optimization.make_optimizer` (Adam, clipnorm 1.0, the staircase schedule), `registry.build_for_input`, and the
trainer's own step, `yt8m_tf.training.step.TrainStep`, with and without `jit_compile=True`. Batches are in memory
(input is not the bottleneck; part 1 measures it).

FLOPs are counted analytically (bench/flops.py: forward matrix products x 3 for forward + backward). The matmul
peak is a `tf.matmul` loop (3072^3 fp32 products, one per graph call) timed interleaved with the steps in the same
process. The last line
is the ratio of each family's best (with or without XLA) achieved FLOP/s to the peak.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402
import flops as flops_lib  # noqa: E402

CLASSES = 3862
VIDEO_DIM = 1152

# name -> (settings overrides, batch size, analytic forward FLOPs per example, description)
MODELS = {
    "logistic": ({"model": "LogisticModel"}, 1024, flops_lib.logistic(VIDEO_DIM, CLASSES),
                 "video-level LogisticModel"),
    "moe": ({"model": "MoeModel", "moe_num_mixtures": 2}, 1024, flops_lib.moe(VIDEO_DIM, CLASSES, 2),
            "video-level MoeModel, 2 mixtures"),
    "mlp": ({"model": "MlpModel", "mlp_hidden_sizes": "4096,4096,4096"}, 1024,
            flops_lib.mlp(VIDEO_DIM, CLASSES, (4096, 4096, 4096)), "video-level MlpModel 4096x3"),
    "lstm": ({"model": "LstmMOModel", "frame_features": True, "feature_names": "rgb,audio",
              "feature_sizes": "1024,128", "lstm_cells": 1152, "lstm_layers": 1, "pooling_l2_normalize": True,
              "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2, "label_loss": "PseudoHuberLoss",
              "huber_delta": 0.5, "max_frames": 300}, 32,
             flops_lib.lstm_m_o_moe(VIDEO_DIM, 1152, 300, CLASSES, 2),
             "frame-level LSTM-M-O 1152 + MoE-2 (paper final), T=300"),
    # The competition winners' published models (yt8m_tf/competition_presets.py), at their published batch sizes.
    "netvlad": ({"model": "NetVLADModel", "frame_features": True, "feature_names": "rgb,audio",
                 "feature_sizes": "1024,128", "max_frames": 300, "netvlad_cluster_size": 256,
                 "netvlad_hidden_size": 1024, "netvlad_relu": False, "gating": True, "moe_prob_gating": True,
                 "iterations": 300, "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2}, 80,
                flops_lib.willow_netvlad_moe((1024, 128), 256, 1024, 300, CLASSES, 2),
                "frame-level WILLOW gated NetVLAD K=256 + gated MoE-2, 300 sampled frames"),
    "nextvlad": ({"model": "NeXtVLADModel", "frame_features": True, "feature_names": "rgb,audio",
                  "feature_sizes": "1024,128", "max_frames": 300, "nextvlad_cluster_size": 112, "groups": 8,
                  "expansion": 2, "nextvlad_hidden_size": 2048, "gating_reduction": 16, "drop_rate": 0.5,
                  "video_level_classifier_model": "LogisticModel"}, 80,
                 flops_lib.nextvlad_logistic((1024, 128), 112, 8, 2, 2048, 16, 300, CLASSES),
                 "frame-level NeXtVLAD K=112 G=8 H=2048 + logistic (2018 3rd place), T=300"),
}
# netvlad / nextvlad: no target yet (not measured); set one from their first run.
TARGETS = {"logistic": None, "moe": 0.50, "mlp": 0.50, "lstm": 0.25, "netvlad": None, "nextvlad": None}


def make_batch(settings, batch_size, rng):
    import numpy as np
    import tensorflow as tf

    if settings.get("frame_features"):
        frames = settings["max_frames"]
        matrix = rng.integers(0, 256, (batch_size, frames, VIDEO_DIM), dtype=np.uint8)  # the reader's uint8 codes
        num_frames = rng.integers(120, frames + 1, batch_size).astype(np.int32)
        matrix[np.arange(frames)[None, :] >= num_frames[:, None]] = 0
    else:
        matrix = rng.normal(0, 0.5, (batch_size, VIDEO_DIM)).astype(np.float32)
        num_frames = np.ones(batch_size, np.int32)
    labels = np.zeros((batch_size, CLASSES), np.float32)
    for row in range(batch_size):
        labels[row, rng.choice(CLASSES, 3, replace=False)] = 1.0
    return {"video_matrix": tf.constant(matrix), "num_frames": tf.constant(num_frames), "labels": tf.constant(labels)}


def make_step(overrides, batch_size, jit_compile):
    """The trainer's model, loss, optimizer and step (`yt8m_tf.training.step.TrainStep`; default strategy, one
    replica)."""
    import tensorflow as tf

    from yt8m_tf import flags as flags_lib, losses as losses_lib, registry
    from yt8m_tf.training import optimization, step as step_lib

    settings = flags_lib.default_model_settings(**overrides)
    model = registry.build_model(settings, jit_compile=jit_compile)
    loss_fn = losses_lib.get_loss(settings["label_loss"], **registry.loss_kwargs(settings))
    schedule = optimization.learning_rate_schedule(0.01, 0.95, 4000000, batch_size)
    optimizer = optimization.make_optimizer("AdamOptimizer", schedule, clip_gradient_norm=1.0)
    registry.build_for_input(model, settings)
    optimizer.build(model.trainable_variables)
    step = step_lib.TrainStep(model, loss_fn, optimizer, batch_size, jit_compile=jit_compile)
    return settings, step if jit_compile else tf.function(step)


def matmul_peak_fn(n=3072, count=2):
    """One n^3 fp32 product per graph call (no inter-op parallelism between products), `count` calls."""
    import tensorflow as tf

    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])

    @tf.function
    def product():
        return tf.matmul(a, b)[0, 0]

    def run():
        for _ in range(count):
            product().numpy()
    return run, 2 * n ** 3 * count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--models", default="moe,mlp,logistic,lstm")
    parser.add_argument("--steps", type=int, default=2, help="video-level steps per timed call (frame level: 1)")
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    peak_run, peak_flops = matmul_peak_fn()
    candidates = {"matmul peak": peak_run}
    info = {}
    for name in args.models.split(","):
        overrides, batch_size, forward, description = MODELS[name]
        steps = 1 if overrides.get("frame_features") else args.steps
        for jit in (False, True):
            settings, step = make_step(overrides, batch_size, jit)
            batch = make_batch(settings, batch_size, rng)

            def run(step=step, batch=batch, steps=steps):
                for _ in range(steps):
                    result = step(batch)
                float(result["loss"])
            key = f"{name}{' xla' if jit else ''}"
            candidates[key] = run
            info[key] = {"name": name, "jit": jit, "batch": batch_size, "steps": steps,
                         "flops": flops_lib.TRAIN_FACTOR * forward * batch_size * steps, "description": description}
        print(f"built {name}", flush=True)

    times = common.interleave(candidates, args.repeats, warmup=1)
    peak = peak_flops / common.median(times["matmul peak"])
    print(f"matmul peak {peak / 1e9:.0f} GFLOP/s", flush=True)
    rows, best = [], {}
    for key, meta in info.items():
        seconds = common.median(times[key]) / meta["steps"]
        achieved = meta["flops"] / meta["steps"] / seconds
        ratio = achieved / peak
        if meta["name"] not in best or ratio > best[meta["name"]][0]:
            best[meta["name"]] = (ratio, key)
        rows.append([meta["description"], "yes" if meta["jit"] else "no", meta["batch"], f"{seconds * 1e3:,.0f}",
                     f"{meta['batch'] / seconds:,.{1 if meta['batch'] / seconds < 100 else 0}f}",
                     f"{meta['flops'] / meta['steps'] / meta['batch'] / 1e6:,.1f}",
                     f"{achieved / 1e9:.0f}", f"{ratio:.0%}"])
        print(f"{key:14s} {seconds * 1e3:8.0f} ms/step {meta['batch'] / seconds:8.1f} examples/s "
              f"{achieved / 1e9:6.0f} GFLOP/s {ratio:6.1%} of peak", flush=True)
    summary = ", ".join(f"{name} {ratio:.0%}" + (f" (target {TARGETS[name]:.0%})" if TARGETS.get(name) else "")
                        for name, (ratio, _) in best.items())
    text = f"""## Training step on the CPU: achieved FLOP/s / fp32 matmul peak

Machine: {common.machine()}.
Matmul peak measured in this run, interleaved with the steps: **{peak / 1e9:.0f} GFLOP/s** (`tf.matmul` of 3072 x 3072
fp32 matrices, one product per graph call, 2 calls per timing). Each model is built and stepped as the trainer does
(see `bench/train_step.py`:
registry, loss, Adam with clipnorm, `TrainStep`), in-memory batches, {args.repeats} interleaved rounds,
medians.

FLOP counting (`bench/flops.py`): matrix products only, 2 FLOPs per multiply-add, forward x 3 for a training step
(forward, input gradient, weight gradient). Logistic: 2*1152*3862 per example. MoE-2: gates 2*d*3862*3 + experts
2*d*3862*2. MLP 4096x3: 2*(1152*4096 + 4096*4096*2 + 4096*3862). LSTM-M-O: every one of the T=300 padded steps runs
x_t W (1152 x 4608) and s_(t-1) U (1152 x 4608), i.e. 300*2*(2*1152*4608), plus MoE-2 on the 4608-wide
[c, s, M, O]. Element-wise work (sigmoids, softmax, gates, the loss, Adam) is not counted.

{common.table(["model", "XLA", "batch", "ms/step", "examples/s", "MFLOP/example (x3)", "GFLOP/s", "of peak"], rows)}

**Best of each family vs peak: {summary}.**
"""
    if not args.no_record:
        common.record("train_step", text)
    print("train_step: " + ", ".join(f"{name} {ratio:.3f}" for name, (ratio, _) in best.items()) + " of matmul peak")


if __name__ == "__main__":
    main()
