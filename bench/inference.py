"""Inference to a Kaggle CSV (`inference.run_inference`) against forward-only throughput of the same model on the
same input (issue #6, part 3).

    python bench/inference.py [--repeats 4]

Two trained models (2 training steps by `yt8m_tf.training.trainer.train` on synthetic data written to /tmp; the
weights do not change the speed): a video-level MoeModel (2 mixtures) over 10,000 synthetic video-level videos, and
a frame-level LSTM-M-O (128 cells) + MoE-2 over 2,000 synthetic official-size frame-level videos (120-300 frames).
For each, interleaved and repeated:

* `run_inference(train_dir, pattern, csv)`: the whole inference.py pass; the time compared is the pass itself
  (`stats["seconds"]`: from the first batch to the closed CSV, loading the model excluded), the whole call is shown
  too;
* forward only, same input: the same reader dataset (`registry.make_reader(...).dataset(pattern, 512,
  num_readers=1)`, what inference reads) through the loaded model's forward pass in a tf.function, predictions
  materialised; no top-k, no CSV;
* forward only, in memory: the same batches held in memory (the model alone).

Like inference.py, which builds its step function anew in every call, each forward-only run traces a fresh
tf.function, so both sides pay one trace per pass.

Target: inference >= 90% of the forward-only throughput on the same input. The last line prints the ratios.
"""

import argparse
import glob
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

ROOT_DIR = "/tmp/yt8m_bench"
BATCH = 512

CASES = {
    "video MoE": {
        "data": ("video", 4, 2500, {}),
        "settings": {"model": "MoeModel", "moe_num_mixtures": 2},
    },
    "frame LSTM-M-O 128 + MoE-2": {
        "data": ("frame", 4, 500, {"min_frames": 120, "max_frames": 300}),
        "settings": {"model": "LstmMOModel", "frame_features": True, "feature_names": "rgb,audio",
                     "feature_sizes": "1024,128", "lstm_cells": 128, "lstm_layers": 1, "pooling_l2_normalize": True,
                     "video_level_classifier_model": "MoeModel", "moe_num_mixtures": 2, "max_frames": 300},
    },
}


def ensure_data(name, level, shards, per_shard, extra):
    from yt8m_tf import synthetic

    folder = os.path.join(ROOT_DIR, f"infer_{level}")
    files = sorted(glob.glob(os.path.join(folder, "*.tfrecord")))
    if len(files) < shards:
        print(f"writing {shards} x {per_shard} {level}-level videos to {folder}", flush=True)
        files = synthetic.write_dataset(folder, level=level, num_shards=shards, videos_per_shard=per_shard, seed=3,
                                        **extra)
    return ",".join(files[:shards])


def ensure_model(name, settings_overrides, pattern):
    from yt8m_tf import flags as flags_lib
    from yt8m_tf.training import trainer
    from yt8m_tf.training import train_dir as train_dir_lib

    train_dir = os.path.join(ROOT_DIR, "models", name.split()[0] + "_" + settings_overrides["model"])
    if train_dir_lib.latest_checkpoint(train_dir):
        return train_dir
    settings = flags_lib.default_model_settings(**settings_overrides)
    options = trainer.TrainOptions(train_data_pattern=pattern, train_dir=train_dir, batch_size=32, max_steps=2,
                                   progress=False, log_steps=1, start_new_model=True, shuffle_buffer=64)
    trainer.train(settings, options)
    return train_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from yt8m_tf import inference
    from yt8m_tf import registry
    from yt8m_tf.training import train_dir as train_dir_lib

    out_dir = tempfile.mkdtemp(prefix="yt8m_bench_csv_")
    candidates, meta = {}, {}
    for name, case in CASES.items():
        level, shards, per_shard, extra = case["data"]
        pattern = ensure_data(name, level, shards, per_shard, extra)
        train_dir = ensure_model(name, case["settings"], pattern)
        model, settings, _ = train_dir_lib.load_trained_model(train_dir)
        reader = registry.make_reader(settings)
        videos = sum(1 for _ in tf.data.TFRecordDataset(pattern.split(",")))

        def make_forward(model=model):
            @tf.function(reduce_retracing=True)
            def forward(video_matrix, num_frames):
                return model({"video_matrix": video_matrix, "num_frames": num_frames}, training=False)["predictions"]
            return forward

        def infer(train_dir=train_dir, pattern=pattern, name=name):
            stats = inference.run_inference(train_dir, pattern, os.path.join(out_dir, "predictions.csv"),
                                            batch_size=BATCH)
            meta[name]["pass_seconds"].append(stats["seconds"])
            assert stats["videos"] == meta[name]["videos"]

        def forward_same_input(reader=reader, pattern=pattern, make_forward=make_forward):
            forward = make_forward()
            for batch in reader.dataset(pattern, BATCH, num_readers=1):
                forward(batch["video_matrix"], batch["num_frames"]).numpy()

        batches = [(b["video_matrix"], b["num_frames"]) for b in reader.dataset(pattern, BATCH, num_readers=1)]

        def forward_in_memory(batches=batches, make_forward=make_forward):
            forward = make_forward()
            for video_matrix, num_frames in batches:
                forward(video_matrix, num_frames).numpy()

        candidates[f"{name}: inference to CSV"] = infer
        candidates[f"{name}: forward only, same reader input"] = forward_same_input
        candidates[f"{name}: forward only, in-memory batches"] = forward_in_memory
        meta[name] = {"videos": videos, "pass_seconds": []}
        print(f"prepared {name}: {videos} videos, model from {train_dir}", flush=True)

    times = common.interleave(candidates, args.repeats, warmup=1)
    rows, ratios = [], {}
    for name in CASES:
        videos = meta[name]["videos"]
        # the wall time of the whole call (model loading included) and inference.py's own pass time
        call = videos / common.median(times[f"{name}: inference to CSV"])
        passed = videos / common.median(meta[name]["pass_seconds"][1:])  # [0] is the warm-up call
        same = videos / common.median(times[f"{name}: forward only, same reader input"])
        memory = videos / common.median(times[f"{name}: forward only, in-memory batches"])
        ratios[name] = passed / same
        best_pass = videos / min(meta[name]["pass_seconds"][1:])
        best_same = videos / min(times[f"{name}: forward only, same reader input"])
        best_memory = videos / min(times[f"{name}: forward only, in-memory batches"])
        best_call = videos / min(times[f"{name}: inference to CSV"])
        rows += [[name, "inference.py pass to CSV (stats['seconds'])", f"{passed:,.0f}", f"{passed / same:.0%}",
                  f"{best_pass:,.0f}", f"{best_pass / best_same:.0%}"],
                 [name, "run_inference call incl. loading the model", f"{call:,.0f}", f"{call / same:.0%}",
                  f"{best_call:,.0f}", f"{best_call / best_same:.0%}"],
                 [name, "forward only, same reader input", f"{same:,.0f}", "100%", f"{best_same:,.0f}", "100%"],
                 [name, "forward only, in-memory batches", f"{memory:,.0f}", f"{memory / same:.0%}",
                  f"{best_memory:,.0f}", f"{best_memory / best_same:.0%}"]]
        print(f"{name}: inference {passed:,.0f} videos/s (call {call:,.0f}), forward same input {same:,.0f}, "
              f"in memory {memory:,.0f} -> {passed / same:.1%} (fastest runs: {best_pass / best_same:.1%})",
              flush=True)
    text = f"""## Inference to CSV vs forward-only throughput

Machine: {common.machine()}.
Models trained 2 steps by the trainer (weights do not change the speed), batch {BATCH} (inference.py's default),
top_k 20. {args.repeats} interleaved rounds, medians. "Same reader input" reads the same files through the same
reader inference.py builds (`registry.make_reader(settings).dataset(pattern, {BATCH}, num_readers=1)`) and runs only
the model's forward pass; "in-memory" runs the forward pass on the same batches already decoded.

{common.table(["model", "what", "videos/s (median)", "of forward-only (same input)", "videos/s (fastest run)",
               "of forward-only (fastest runs)"], rows)}

The machine is shared: between two runs of the same thing the rate varies by up to +-40% here, so the medians of a
few interleaved runs carry that noise; the fastest run of each (the least disturbed) is shown too.

**Inference / forward-only on the same input: {', '.join(f'{n} {r:.0%}' for n, r in ratios.items())}
(target >= 90%).**
"""
    if not args.no_record:
        common.record("inference", text)
    print("inference: " + ", ".join(f"{n} {r:.3f}" for n, r in ratios.items()) + " of forward-only")


if __name__ == "__main__":
    main()
