"""The recipe knobs on frame-level training: the paper's final model (--preset=final/lstm-m-o-moe2-huber: LSTM-M-O +
MoE-2 + pseudo-Huber) at reduced width on synthetic official-format frame-level data (python -m yt8m_tf.synthetic),
without and with the knobs of docs/QUALITY.md (output bias at the prior, per-feature L2 input normalisation,
dropout, learning-rate warmup), at the demo's learning rate and at a 5x larger one.

    python bench/quality_frame.py [--work_dir /tmp/yt8m_quality_frame] [--steps 240]

Prints one line per run (GAP, mAP, Hit@1 on the synthetic validation set, the logged training losses, whether every
logged loss was finite) and the GAP of the last run (all knobs at the larger learning rate) as the last line. Each
knob is also added alone at the larger learning rate.
"""

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

L = f"{math.log(1 / 1000):.6f}"
KNOBS = [f"--output_bias_init={L}", "--input_normalization=l2_scaled", "--lstm_dropout=0.2", "--warmup_steps=40"]
X5 = ["--base_learning_rate=0.01"]
RUNS = {
    "final (demo setup)": [],
    "final + all knobs": KNOBS,
    "final, lr x5": X5,
    "final, lr x5 + bias init": X5 + KNOBS[:1],
    "final, lr x5 + input norm": X5 + KNOBS[1:2],
    "final, lr x5 + lstm dropout": X5 + KNOBS[2:3],
    "final, lr x5 + warmup": X5 + KNOBS[3:],
    "final, lr x5 + all knobs": X5 + KNOBS,
    # The bias prior with cross entropy instead of the pseudo-Huber loss (which damps the large initial positive
    # terms that the prior creates):
    "final with CE, lr x5": X5 + ["--label_loss=CrossEntropyLoss"],
    "final with CE, lr x5 + bias init": X5 + ["--label_loss=CrossEntropyLoss"] + KNOBS[:1],
    # ... and at this data's own prior (2.9 labels over 400 classes: log(0.0073)) instead of the 2018 data's
    "final with CE, lr x5 + matched bias init": X5 + ["--label_loss=CrossEntropyLoss", "--output_bias_init=-4.92"],
    "final, lr x5 + matched bias init": X5 + ["--output_bias_init=-4.92"],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", default="/tmp/yt8m_quality_frame")
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--num_classes", type=int, default=400)
    parser.add_argument("--runs", default="", help="run names separated by semicolons (default: all)")
    args = parser.parse_args()
    from yt8m_tf import synthetic

    data = os.path.join(args.work_dir, "data")
    if not os.path.isdir(data):
        common = dict(level="frame", release="2018", min_frames=20, max_frames=60, num_classes=args.num_classes)
        synthetic.write_dataset(data, prefix="train", num_shards=4, videos_per_shard=400, seed=1, **common)
        synthetic.write_dataset(data, prefix="validate", num_shards=1, videos_per_shard=400, seed=2, **common)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    gap = float("nan")
    names = [n.strip() for n in args.runs.split(";") if n.strip()] or list(RUNS)
    for name in names:
        extra = RUNS[name]
        train_dir = os.path.join(args.work_dir, re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))
        shutil.rmtree(train_dir, ignore_errors=True)
        command = ["train.py", "--preset=final/lstm-m-o-moe2-huber", f"--train_data_pattern={data}/train*.tfrecord",
                   f"--train_dir={train_dir}", f"--num_classes={args.num_classes}", "--lstm_cells=128",
                   "--max_frames=60", "--batch_size=32", "--base_learning_rate=0.002", f"--max_steps={args.steps}",
                   "--checkpoint_steps=0", "--log_steps=40", "--quiet", *extra]
        print("$ python " + " ".join(shlex.quote(a) for a in command), file=sys.stderr, flush=True)
        started = time.time()
        result = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.time() - started
        losses = [float(v) for v in re.findall(r"^step \d+: loss (\S+)", result.stdout, re.M)]
        if result.returncode:
            print(f"{name}\ttraining stopped: {(result.stderr or result.stdout).strip().splitlines()[-1]}\t"
                  f"losses {losses}", flush=True)
            gap = float("nan")
            continue
        metrics_file = os.path.join(train_dir, "metrics.json")
        subprocess.run([sys.executable, "eval.py", f"--eval_data_pattern={data}/validate*.tfrecord",
                        f"--train_dir={train_dir}", "--run_once", f"--output_metrics={metrics_file}"],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        with open(metrics_file) as f:
            metrics = json.load(f)
        gap = metrics["gap"]
        finite = all(math.isfinite(v) for v in losses)
        print(f"{name}\tGAP {gap:.4f}\tmAP {metrics['map']:.4f}\tHit@1 {metrics['hit_at_one']:.4f}\t"
              f"train {wall:.0f} s\tlosses {' '.join(f'{v:.2f}' for v in losses)}\tall finite {finite}\t"
              f"{' '.join(extra)}", flush=True)
    print(f"{gap:.4f}")


if __name__ == "__main__":
    main()
