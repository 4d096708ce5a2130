"""Weight averaging and distillation on the real 2018 video-level shards (issue #16), through the real programs.

    python bench/quality_distill.py --study=ema --split=tuning       # video-best with --ema_decay values
    python bench/quality_distill.py --study=distill --split=tuning   # out-of-fold teachers -> one student

Splits (the protocol of docs/QUALITY.md): tuning = train 0000-0079 / eval 0080-0099; second = 0020-0099 / 0000-0019;
third = 0000-0089 / 0090-0099.

ema: `--preset=video-best` (or --members=1 for a screen) with each of --decays, eval.py on the eval shards.
distill: the training shards in --folds folds; for each fold a teacher (`--preset=video-best`) trained on the
other folds writes its top-100 predictions for the fold's videos (inference.py --top_k=100): out-of-fold soft
targets, which no teacher saw while training (a teacher scores GAP 0.96 on its own training videos). Then a student
without the k-NN memory (`--preset=video-best --knn_memory_size=0 --ensemble_members=1`) trains on all training
shards with --teacher_predictions (--distillation_weight 0.5 and 1.0), and the same student without a teacher.
Prints one line per run (bench/quality_video.py's format) and the best student's GAP last.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import quality_video  # noqa: E402

SPLITS = {"tuning": ("validate00[0-7][0-9].tfrecord", "validate00[89][0-9].tfrecord"),
          "second": ("validate00[2-9][0-9].tfrecord", "validate000[0-9].tfrecord,validate001[0-9].tfrecord"),
          "third": ("validate00[0-8][0-9].tfrecord", "validate009[0-9].tfrecord")}
STUDENT = ["--preset=video-best", "--knn_memory_size=0", "--ensemble_members=1"]


def shards(data_dir, patterns):
    import glob

    return sorted({f for p in patterns.split(",") for f in glob.glob(os.path.join(data_dir, p))})


def run(name, flags, train, evaluate, args):
    args.train, args.eval = train, evaluate
    return quality_video.run_row(name, flags, args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=("ema", "distill"), required=True)
    parser.add_argument("--split", choices=tuple(SPLITS), default="tuning")
    parser.add_argument("--decays", default="0.99,0.995")
    parser.add_argument("--members", type=int, default=2, help="--ensemble_members of the ema runs")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--weights", default="0.5,1.0", help="--distillation_weight values of the students")
    parser.add_argument("--data_dir", default=quality_video.DATA)
    parser.add_argument("--work_dir", default="/tmp/yt8m_distill")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    args.trained = []
    train_glob, eval_glob = SPLITS[args.split]
    train_files = shards(args.data_dir, train_glob)
    evaluate = ",".join(shards(args.data_dir, eval_glob))
    members = [f"--ensemble_members={args.members}"]
    if args.study == "ema":
        run(f"{args.split}-video-best-m{args.members}", ["--preset=video-best", *members], ",".join(train_files),
            evaluate, args)
        for decay in args.decays.split(","):
            run(f"{args.split}-video-best-m{args.members}-ema{decay}",
                ["--preset=video-best", *members, f"--ema_decay={decay}"], ",".join(train_files), evaluate, args)
        return
    predictions = []
    for k in range(args.folds):
        held_out = train_files[k::args.folds]
        others = [f for f in train_files if f not in held_out]
        name = f"{args.split}-teacher-fold{k}"
        run(name, ["--preset=video-best"], ",".join(others), "", args)
        out = os.path.join(args.work_dir, f"{name}.csv")
        subprocess.run([sys.executable, os.path.join(quality_video.ROOT, "inference.py"),
                        f"--train_dir={os.path.join(args.work_dir, name)}", f"--input_data_pattern={','.join(held_out)}",
                        "--top_k=100", f"--output_file={out}"], check=True,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                       stdout=None if args.verbose else subprocess.DEVNULL)
        predictions.append(out)
    all_train = ",".join(train_files)
    gap = run(f"{args.split}-student-alone", STUDENT, all_train, evaluate, args)
    for weight in args.weights.split(","):
        gap = max(gap, run(f"{args.split}-student-distill{weight}",
                           [*STUDENT, f"--teacher_predictions={','.join(predictions)}",
                            f"--distillation_weight={weight}"], all_train, evaluate, args))
    print(f"{gap:.4f}")


if __name__ == "__main__":
    main()
