"""The main job on a fresh machine, no data needed: the paper's final single model end to end on synthetic data.

    python demo.py [--output_dir demo_output] [--steps 240]

1. writes an official-format (2018 layout: `id` keys, 1024-d rgb + 128-d audio uint8 frames) synthetic frame-level
   dataset of 400 classes: train, validate, and an unlabelled test set like Kaggle's;
2. trains `--preset=final/lstm-m-o-moe2-huber` (LSTM-M-O + MoE-2 + pseudo-Huber, paper section 3.3) at reduced
   width (LSTM d = 128 instead of 1152, 60 frames) on the CPU;
3. evaluates it (GAP, mAP, Hit@1, PERR) and writes a Kaggle submission CSV for the test set.

Each step runs the real command-line program; the commands are printed so they can be reused on real data.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

from yt8m_tf import cli  # noqa: F401  first: quiets TensorFlow's start-up lines
from yt8m_tf import synthetic  # noqa: E402

REPO = os.path.dirname(os.path.abspath(__file__))


def run(script, *args):
    command = [sys.executable, os.path.join(REPO, script), *args]
    print("$ python " + " ".join(shlex.quote(a) for a in [script, *args]), flush=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, env=env)
    if result.returncode:
        sys.exit(f"demo: {script} failed with exit code {result.returncode}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="demo_output")
    parser.add_argument("--steps", type=int, default=240, help="training steps (batch 32)")
    parser.add_argument("--train_videos", type=int, default=1600)
    parser.add_argument("--num_classes", type=int, default=400,
                        help="classes of the synthetic world (real 2018 data: 3862; a small demo set cannot cover "
                             "that many)")
    args = parser.parse_args()
    started = time.time()
    data = os.path.join(args.output_dir, "data")
    train_dir = os.path.join(args.output_dir, "model")

    print(f"[1/4] writing synthetic official-format frame-level data to {data}", flush=True)
    common = dict(level="frame", release="2018", min_frames=20, max_frames=60, num_classes=args.num_classes)
    synthetic.write_dataset(data, prefix="train", num_shards=4, videos_per_shard=args.train_videos // 4, seed=1,
                            **common)
    synthetic.write_dataset(data, prefix="validate", num_shards=1, videos_per_shard=400, seed=2, **common)
    synthetic.write_dataset(data, prefix="test", num_shards=1, videos_per_shard=200, seed=3, with_labels=False,
                            **common)

    print("[2/4] training the paper's final single model at reduced width", flush=True)
    run("train.py", "--preset=final/lstm-m-o-moe2-huber", f"--train_data_pattern={data}/train*.tfrecord",
        f"--train_dir={train_dir}", "--start_new_model", f"--num_classes={args.num_classes}", "--lstm_cells=128", "--max_frames=60", "--batch_size=32",
        "--base_learning_rate=0.002", f"--max_steps={args.steps}", "--checkpoint_steps=100", "--log_steps=40",
        "--quiet")

    print("[3/4] evaluating on the validation set", flush=True)
    metrics_file = os.path.join(args.output_dir, "metrics.json")
    run("eval.py", f"--eval_data_pattern={data}/validate*.tfrecord", f"--train_dir={train_dir}", "--run_once",
        f"--output_metrics={metrics_file}")

    print("[4/4] writing a Kaggle submission for the unlabelled test set", flush=True)
    submission = os.path.join(args.output_dir, "predictions.csv")
    run("inference.py", f"--input_data_pattern={data}/test*.tfrecord", f"--train_dir={train_dir}",
        f"--output_file={submission}")

    with open(metrics_file) as f:
        metrics = json.load(f)
    print(f"\ndone in {time.time() - started:.0f} s\n"
          f"  data:        {data}/{{train,validate,test}}*.tfrecord\n"
          f"  model:       {train_dir} (checkpoints, model_flags.json, TensorBoard summaries, SavedModel export)\n"
          f"  metrics:     {metrics_file}\n"
          f"  submission:  {submission}\n"
          f"  validation GAP@20 {metrics['gap']:.3f}, mAP {metrics['map']:.3f}, Hit@1 {metrics['hit_at_one']:.3f}")


if __name__ == "__main__":
    main()
