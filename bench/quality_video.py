"""Reproduces the video-level rows of docs/QUALITY.md on the 100 real 2018 shards: train.py on 0000-0079, eval.py on
0080-0099, through the real command-line programs.

    python bench/quality_video.py                      # the final recipe (--preset=video-best) only
    python bench/quality_video.py --rows=all           # every row of the table (about 1-8 min each on 2 cores)
    python bench/quality_video.py --rows=video-moe,logistic-starter
    python bench/quality_video.py --train=all --eval=''   # train video-best on all 100 shards (the timing run)

Prints one tab-separated line per row (name, GAP, mAP, Hit@1, train wall seconds, train CPU seconds, eval wall
seconds, trainable parameters, the train.py flags) and the GAP of the last row as the last line. Data:
../shared/data/yt8m/v2-video beside the repo, or --data_dir.
"""

import argparse
import json
import math
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "yt8m", "v2-video"))
L = f"{math.log(1 / 1000):.6f}"
# The preset before the output-space vote (--knn_output_weight) and 10 epochs: the base of the rows below
HIDDEN_VOTE = ["--preset=video-best", "--knn_weight=0.3", "--knn_output_weight=0", "--num_epochs=12"]
ONE = [*HIDDEN_VOTE, "--ensemble_members=1"]  # its single-model recipe
FOCAL = [*ONE, "--base_learning_rate=0.002"]  # ONE before the preset's learning rate went from 2e-3 to 3e-3
CE = [*FOCAL, "--focal_gamma_neg=0"]  # and before the asymmetric focusing (the ablations below were measured with it)
ADAM = [*CE, "--optimizer=AdamOptimizer", "--weight_decay=0"]

# name -> train.py flags. The order is the table's.
ROWS = {
    # starter-code baselines
    "logistic-starter": ["--model=LogisticModel", "--base_learning_rate=0.01", "--num_epochs=12"],
    "logistic-bias": ["--model=LogisticModel", f"--output_bias_init={L}", "--base_learning_rate=0.01",
                      "--num_epochs=3"],
    "moe2-starter": ["--model=MoeModel", "--base_learning_rate=0.005", "--num_epochs=12"],
    "moe2-bias": ["--model=MoeModel", f"--output_bias_init={L}", "--base_learning_rate=0.005", "--num_epochs=5"],
    "video-moe": ["--preset=video-moe"],
    "mlp-reference": ["--model=MlpModel", "--mlp_hidden_sizes=2048", "--mlp_layer_norm", "--mlp_dropout=0.5",
                      f"--output_bias_init={L}", "--base_learning_rate=0.001", "--batch_size=256",
                      "--num_epochs=3"],
    "mlp-reference-nobias": ["--model=MlpModel", "--mlp_hidden_sizes=2048", "--mlp_layer_norm", "--mlp_dropout=0.5",
                             "--base_learning_rate=0.001", "--batch_size=256", "--num_epochs=3"],
    # the final recipe, the recipes before it, and one-knob ablations of the recipe it was tuned as (the same with
    # Adam, no weight decay)
    "video-best": ["--preset=video-best"],
    "video-best-1member": ["--preset=video-best", "--ensemble_members=1"],
    "video-best-12ep": ["--preset=video-best", "--num_epochs=12"],
    "video-best-hiddenvote": [*HIDDEN_VOTE],
    "video-best-hiddenvote-1member": [*ONE],
    "video-best-lr2e-3": [*HIDDEN_VOTE, "--base_learning_rate=0.002"],
    "video-best-1member-lr2e-3": [*FOCAL],
    "video-best-ce": [*HIDDEN_VOTE, "--base_learning_rate=0.002", "--focal_gamma_neg=0"],
    "video-best-1member-ce": [*CE],
    "video-best-wd2": [*CE, "--weight_decay=2.0"],
    "video-best-lr3e-3": [*CE, "--base_learning_rate=0.003"],
    "video-best-16ep": [*CE, "--num_epochs=16"],
    "video-best-dropout0.5": [*CE, "--mlp_dropout=0.5"],
    "video-best-adam": [*ADAM],
    "video-best-adam-noknn": [*ADAM, "--knn_memory_size=0"],
    "video-best-adam-nonoise": [*ADAM, "--mlp_input_noise=0"],
    "video-best-adam-nonorm": [*ADAM, "--input_normalization=none"],
    "video-best-adam-l2": [*ADAM, "--input_normalization=l2"],
    "video-best-adam-nobias": [*ADAM, "--output_bias_init=0"],
    "video-best-adam-relu": [*ADAM, "--mlp_activation=relu"],
    "video-best-adam-constlr": [*ADAM, "--learning_rate_decay=1.0"],
    "video-best-adam-ls0.1": [*ADAM, "--label_smoothing=0.1"],
    "video-best-adam-huber": [*ADAM, "--label_loss=PseudoHuberLoss", "--huber_delta=0.5"],
    "video-best-adam-moe2": [*ADAM, "--model=MoeModel", "--knn_memory_size=0"],
}

SPLITS = {"train": "validate00[0-7][0-9].tfrecord", "eval": "validate00[89][0-9].tfrecord",
          "all": "validate00[0-9][0-9].tfrecord"}


def trainable_parameters(train_dir):
    sys.path.insert(0, ROOT)
    from yt8m_tf.training import train_dir as train_dir_lib  # noqa: E402  (TensorFlow only when needed)

    model, _, _ = train_dir_lib.load_trained_model(train_dir)
    return sum(int(math.prod(v.shape)) for v in model.trainable_weights)


def evaluate_ensemble(train_dirs, pattern):
    """GAP, mAP, Hit@1 of the average of several trained models' predictions (what `inference.py
    --train_dir=a,b,c` writes), on video-level data."""
    sys.path.insert(0, ROOT)
    import numpy as np  # noqa: E402
    import tensorflow as tf  # noqa: E402

    from yt8m_tf import metrics as metrics_lib, registry  # noqa: E402
    from yt8m_tf.training import evaluation, train_dir as train_dir_lib  # noqa: E402

    models = [train_dir_lib.load_trained_model(d)[:2] for d in train_dirs]
    settings = models[0][1]
    accumulator = metrics_lib.EvaluationMetrics(settings["num_classes"], top_k=20)

    @tf.function
    def step(inputs):
        predictions = tf.add_n([m(inputs, training=False)["predictions"] for m, _ in models]) / len(models)
        return metrics_lib.top_k_step_outputs(predictions, inputs["labels"], 20, xla_compatible=True)

    for batch in registry.make_reader(settings).dataset(pattern, 1024):
        outputs = step(evaluation.model_inputs(batch))
        accumulator.accumulate_top_k(**{k: v.numpy() for k, v in outputs.items()},
                                     loss=np.zeros(int(batch["labels"].shape[0])))
    return accumulator.get()


def run_row(name, flags, args):
    train_dir = os.path.join(args.work_dir, name)
    shutil.rmtree(train_dir, ignore_errors=True)
    train_pattern = os.path.join(args.data_dir, SPLITS.get(args.train, args.train))
    command = [sys.executable, os.path.join(ROOT, "train.py"), f"--train_data_pattern={train_pattern}",
               f"--train_dir={train_dir}", "--quiet", "--log_steps=1000", "--checkpoint_steps=0", *flags]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    print("$ python " + " ".join(shlex.quote(a) for a in command[1:]), file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL if not args.verbose else None)
    wall = time.time() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    metrics = {"gap": float("nan"), "map": float("nan"), "hit_at_one": float("nan")}
    eval_wall = float("nan")
    if args.eval:
        started = time.time()
        out = os.path.join(train_dir, "metrics.json")
        subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"),
                        f"--eval_data_pattern={os.path.join(args.data_dir, SPLITS.get(args.eval, args.eval))}",
                        f"--train_dir={train_dir}", "--run_once", f"--output_metrics={out}"],
                       check=True, env=env, stdout=subprocess.DEVNULL if not args.verbose else None)
        eval_wall = time.time() - started
        with open(out) as f:
            metrics = json.load(f)
    params = trainable_parameters(train_dir)
    args.trained.append(train_dir)
    print(f"{name}\tGAP {metrics['gap']:.4f}\tmAP {metrics['map']:.4f}\tHit@1 {metrics['hit_at_one']:.4f}\t"
          f"train {wall:.0f} s wall, {cpu:.0f} s CPU\teval {eval_wall:.0f} s wall\t{params} trainable\t"
          f"{' '.join(flags)}", flush=True)
    return metrics["gap"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="video-best", help="comma-separated row names, or 'all'")
    parser.add_argument("--data_dir", default=DATA)
    parser.add_argument("--work_dir", default="/tmp/yt8m_quality")
    parser.add_argument("--train", default="train", help="train (0000-0079), all (0000-0099) or a file glob")
    parser.add_argument("--eval", default="eval", help="eval (0080-0099), a file glob, or '' for none")
    parser.add_argument("--seeds", default="", help="comma-separated --seed values: each row once per seed")
    parser.add_argument("--ensemble", action="store_true", help="also evaluate the average of all trained rows")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if not os.path.isdir(args.data_dir):
        sys.exit(f"no data at {args.data_dir} (the 100 real 2018 video-level shards validate00NN.tfrecord)")
    names = list(ROWS) if args.rows == "all" else [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        sys.exit(f"unknown rows {unknown}; valid: {', '.join(ROWS)}")
    seeds = [s.strip() for s in args.seeds.split(",") if s.strip()]
    args.trained = []
    gap = float("nan")
    for name in names:
        for seed in seeds or [None]:
            flags = ROWS[name] + ([f"--seed={seed}"] if seed is not None else [])
            gap = run_row(name if seed is None else f"{name}-seed{seed}", flags, args)
    if args.ensemble and args.eval:
        metrics = evaluate_ensemble(args.trained, os.path.join(args.data_dir, SPLITS.get(args.eval, args.eval)))
        gap = metrics["gap"]
        print(f"ensemble of {len(args.trained)}\tGAP {gap:.4f}\tmAP {metrics['map']:.4f}\t"
              f"Hit@1 {metrics['hit_at_one']:.4f}\tpython inference.py --train_dir={','.join(args.trained)} ...",
              flush=True)
    print(f"{gap:.4f}")


if __name__ == "__main__":
    main()
