"""The k-NN memory's cost against its size (issue #18): checkpoint bytes and the time of one batch's votes.

    python bench/knn_memory.py [--sizes 32768,131072,262144] [--repeats 3]

One `video-best` member (MLP 1152 -> 2048 -> 3862 in a `KnnMemory` with both votes, k = 50) per memory size, its
memory filled (every slot taken, random keys and labels), then:
  vote      inference on a batch of 512 videos (the MLP + the hidden-space and the output-space votes), median of
            --repeats timed calls of a compiled function, and the MLP alone for scale;
  refresh   `refresh_memory()` (rebuilds the output keys before each checkpoint);
  bytes     the size on disk of a tf.train.Checkpoint of the model (what every checkpoint and export carries).
The last line extrapolates linearly to the 3,888,919 videos of the 2018 training set (an estimate: the vote is a
(B x d) x (d x M) product plus M-row gathers, linear in M; the slope between the smallest and largest size measured).
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

TRAIN_SET_2018 = 3_888_919
BATCH = 512


def build(size):
    import numpy as np

    from yt8m_tf import flags as flags_lib, presets, registry

    preset = presets.get_preset("video-best")
    settings = flags_lib.default_model_settings(**{k: v for k, v in preset.items() if k in flags_lib.MODEL_FLAGS})
    settings.update(knn_memory_size=size, ensemble_members=1)
    model = registry.build_model(settings)
    memory = model.classifier
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(size, memory.keys.shape[1])).astype(np.float32)
    memory.keys.assign((keys / np.linalg.norm(keys, axis=1, keepdims=True)).astype(np.float16))
    memory.key_norms.assign(np.full(size, 20.0, np.float32))
    labels = np.full((size, memory.max_labels), -1, np.int32)
    labels[:, :3] = rng.integers(0, settings["num_classes"], (size, 3))
    memory.label_ids.assign(labels)
    memory.fingerprints.assign(rng.normal(size=(size, 2)).astype(np.float32))
    memory.count.assign(size)
    return settings, model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32768,131072,262144")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from yt8m_tf.training import train_dir as train_dir_lib

    rows, per_slot = [], []
    loads = [common.load_average()]
    inputs = {"video_matrix": tf.constant(np.random.default_rng(1).normal(size=(BATCH, 1152)).astype(np.float32)),
              "num_frames": tf.ones([BATCH], tf.int32)}
    for size in (int(s) for s in args.sizes.split(",")):
        settings, model = build(size)
        predict = tf.function(lambda batch: model(batch, training=False)["predictions"])
        alone = tf.function(lambda batch: model.classifier.classifier(model.input_normalization(
            batch["video_matrix"]), training=False))
        refresh = tf.function(model.classifier.refresh_memory)
        calls = {"vote": lambda: predict(inputs).numpy(), "mlp": lambda: alone(inputs).numpy(),
                 "refresh": lambda: (refresh(), model.classifier.output_ids.numpy())}
        times = common.interleave(calls, args.repeats, warmup=1)
        seconds = {name: common.median(values) for name, values in times.items()}
        with tempfile.TemporaryDirectory() as directory:
            prefix = train_dir_lib.make_checkpoint(model).write(os.path.join(directory, "ckpt"))
            size_bytes = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
                             if os.path.basename(f).startswith(os.path.basename(prefix)))
        loads.append(common.load_average())
        per_slot.append((size, seconds["vote"] - seconds["mlp"], size_bytes, seconds["refresh"]))
        rows.append([f"{size:,}", f"{size_bytes / 2**20:,.0f}", f"{seconds['vote'] * 1e3:,.0f}",
                     f"{seconds['mlp'] * 1e3:,.0f}", f"{seconds['refresh']:.1f}"])
        print(f"{size:>9,} slots: checkpoint {size_bytes / 2**20:,.0f} MiB, batch of {BATCH}: vote "
              f"{seconds['vote'] * 1e3:,.0f} ms (MLP alone {seconds['mlp'] * 1e3:,.0f} ms), refresh "
              f"{seconds['refresh']:.1f} s", flush=True)
        del model
    (small, *first), (large, *last) = per_slot[0], per_slot[-1]
    vote_per_slot, bytes_per_slot, refresh_per_slot = ((b - a) / (large - small) for a, b in zip(first, last))
    estimate = (f"{TRAIN_SET_2018:,} slots (estimate: the cost per slot between the smallest and the largest size "
                "measured, times the slots): "
                f"checkpoint {bytes_per_slot * TRAIN_SET_2018 / 2**30:.1f} GiB per member, vote "
                f"{vote_per_slot * TRAIN_SET_2018:.0f} s per batch of {BATCH} on this CPU, refresh "
                f"{refresh_per_slot * TRAIN_SET_2018 / 60:.0f} min per checkpoint")
    text = f"""## k-NN memory: checkpoint size and vote time against the number of slots (issue #18)

Machine: {common.machine()}; load average {min(loads):.1f}-{max(loads):.1f} during the run.
One `video-best` member (MLP 1152 -> 2048 -> 3862 in a `KnnMemory` with both votes, k = 50), every slot filled;
inference on a batch of {BATCH} videos (median of {args.repeats} compiled calls), `refresh_memory()` (run before each
checkpoint and export), and the bytes of a `tf.train.Checkpoint` of the model.

{common.table(["slots", "checkpoint MiB", f"batch of {BATCH}: MLP + votes (ms)", "MLP alone (ms)",
               "refresh (s)"], rows)}

{estimate}.
"""
    if not args.no_record:
        common.record("knn_memory", text)
    print("knn_memory: " + estimate)


if __name__ == "__main__":
    main()
