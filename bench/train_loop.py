"""The trainer's steady-state throughput against a bare compiled loop of the same step, and --steps_per_loop 1 vs 32
(issue #14).

    python bench/train_loop.py [--repeats 3] [--models moe,lstm]

For each model, in one process:
  bare     `step.make_loop` over `step.TrainStep` (what the trainer runs) on ONE in-memory batch repeated, 32 steps
           per call: the step's own cost, no input pipeline, no host work between steps.
  trainer  `trainer.train` on synthetic official-format files (written to a temporary directory first): input
           pipeline, device loop, logs, the end-of-run checkpoint and export. Its steady state is the difference of
           two runs, N and N + M steps (M = --measure_steps), so set-up, tracing, the last checkpoint and the export
           cancel out; once with --steps_per_loop=1 and once with 32.
Each variant is repeated --repeats times, interleaved; medians of wall time and of process CPU time (user + system,
all threads) per example. The ratio trainer / bare (examples/s) is the fraction of the step's speed the trainer keeps;
on this 2-core machine the input pipeline shares the cores with the step, so it is a lower bound of what a host
with spare cores for the input reaches.
"""

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

# name -> (settings overrides, data (level, videos, min/max frames), batch size, description)
MODELS = {
    "moe": ({"model": "MoeModel", "moe_num_mixtures": 2}, ("video", 4096, 0, 0), 256,
            "video-level MoE-2, 1152 -> 3862"),
    "lstm": ({"model": "LstmMOModel", "frame_features": True, "feature_names": "rgb,audio",
              "feature_sizes": "1024,128", "lstm_cells": 64, "lstm_layers": 1, "pooling_l2_normalize": True,
              "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2, "label_loss": "PseudoHuberLoss",
              "huber_delta": 0.5, "max_frames": 300}, ("frame", 384, 120, 300), 32,
             "frame-level LSTM-M-O 64 cells + MoE-2 (the paper's final model at reduced width), T=300"),
}
LOOP = 32


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(fn):
    """(wall seconds, CPU seconds) of fn()."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def write_data(directory, level, videos, min_frames, max_frames):
    from yt8m_tf import synthetic

    synthetic.write_dataset(directory, level=level, num_shards=4, videos_per_shard=videos // 4,
                            min_frames=min_frames, max_frames=max_frames, seed=0)
    return os.path.join(directory, "train*.tfrecord")


def bare_loop(settings, pattern, batch_size):
    """A callable running LOOP steps of the trainer's step on one in-memory batch."""
    import tensorflow as tf

    from yt8m_tf import losses, registry
    from yt8m_tf.training import evaluation, optimization, step as step_lib

    model = registry.build_model(settings)
    optimizer = optimization.make_optimizer("AdamOptimizer", 0.001, clip_gradient_norm=1.0)
    registry.build_for_input(model, settings)
    optimizer.build(model.trainable_variables)
    step = step_lib.TrainStep(model, losses.get_loss(settings["label_loss"], **registry.loss_kwargs(settings)),
                              optimizer, batch_size)
    batch = next(iter(registry.make_reader(settings).dataset(pattern, batch_size, drop_remainder=True)))
    iterator = iter(tf.data.Dataset.from_tensors(evaluation.model_inputs(batch)).repeat())
    loop = step_lib.make_loop(tf.distribute.get_strategy(), step)
    steps = tf.constant(LOOP)
    return lambda: float(loop(iterator, steps)[0]["loss"])


def trainer_run(settings, pattern, batch_size, steps_per_loop, max_steps, root):
    from yt8m_tf.training import trainer

    def run():  # a new --train_dir each time: a rerun must not resume the previous one
        options = trainer.TrainOptions(train_data_pattern=pattern, train_dir=tempfile.mkdtemp(dir=root),
                                       batch_size=batch_size, max_steps=max_steps, steps_per_loop=steps_per_loop,
                                       checkpoint_steps=0, log_steps=10 ** 9, progress=False,
                                       base_learning_rate=0.001)
        trainer.train(settings, options)
        shutil.rmtree(options.train_dir, ignore_errors=True)
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="moe,lstm")
    parser.add_argument("--base_steps", type=int, default=32, help="N: steps of the shorter trainer run")
    parser.add_argument("--measure_steps", type=int, default=96, help="M: extra steps of the longer run")
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    from yt8m_tf import flags as flags_lib

    root = tempfile.mkdtemp(prefix="yt8m-bench-loop-")
    rows, last = [], []
    loads = [common.load_average()]
    for name in args.models.split(","):
        overrides, data, batch_size, description = MODELS[name]
        settings = flags_lib.default_model_settings(**overrides)
        pattern = write_data(os.path.join(root, name), *data)
        bare = bare_loop(settings, pattern, batch_size)
        bare()  # trace and warm up
        runs = {"bare": [bare]}
        for loop in (1, LOOP):
            runs[f"trainer loop {loop}"] = [trainer_run(settings, pattern, batch_size, loop, steps, root)
                                           for steps in (args.base_steps, args.base_steps + args.measure_steps)]
        samples = {key: [] for key in runs}
        for r in range(args.repeats):
            for key in list(runs)[r % len(runs):] + list(runs)[:r % len(runs)]:
                times = [measure(fn) for fn in runs[key]]
                if key == "bare":
                    samples[key].append((times[0][0] / LOOP, times[0][1] / LOOP))
                else:
                    (short_wall, short_cpu), (long_wall, long_cpu) = times
                    samples[key].append(((long_wall - short_wall) / args.measure_steps,
                                         (long_cpu - short_cpu) / args.measure_steps))
            loads.append(common.load_average())
        per_step = {key: (common.median([s[0] for s in v]), common.median([s[1] for s in v]))
                    for key, v in samples.items()}
        bare_rate = batch_size / per_step["bare"][0]
        for key, (wall, cpu) in per_step.items():
            rate = batch_size / wall
            rows.append([description if key == "bare" else "", key, batch_size, f"{wall * 1e3:,.1f}",
                         f"{rate:,.0f}", f"{cpu / batch_size * 1e6:,.0f}", f"{rate / bare_rate:.0%}"])
            print(f"{name:5s} {key:16s} {wall * 1e3:9.1f} ms/step {rate:9.0f} examples/s "
                  f"{cpu / batch_size * 1e6:8.0f} CPU-us/example {rate / bare_rate:6.1%} of bare", flush=True)
        last.append(f"{name} trainer/bare {batch_size / per_step[f'trainer loop {LOOP}'][0] / bare_rate:.3f} "
                    f"(loop 1: {batch_size / per_step['trainer loop 1'][0] / bare_rate:.3f})")
    text = f"""## Training loop: the trainer's steady state vs a bare compiled loop of the same step (issue #14)

Machine: {common.machine()}; load average {min(loads):.1f}-{max(loads):.1f} during the run.
Bare: `step.make_loop` over the trainer's `step.TrainStep`, one in-memory batch, {LOOP} steps per call. Trainer:
`trainer.train` on synthetic files in official format, per-step cost = (run of {args.base_steps} + {args.measure_steps}
steps - run of {args.base_steps} steps) / {args.measure_steps}, so set-up, tracing, the final checkpoint and the export
cancel. {args.repeats} interleaved repeats, medians. CPU-us/example: process CPU time (all threads) per training
example; the trainer's includes its input pipeline, which on this 2-core machine competes with the step for the
same cores (the bare loop has no input to read).

{common.table(["model", "variant", "batch", "ms/step", "examples/s", "CPU-us/example", "of bare"], rows)}
"""
    if not args.no_record:
        common.record("train_loop", text)
    print("train_loop: " + "; ".join(last))


if __name__ == "__main__":
    main()
