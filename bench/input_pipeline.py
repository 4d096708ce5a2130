"""Frame-level input pipeline throughput against the raw read of the same TFRecord files (issue #6, part 1).

    python bench/input_pipeline.py [--data_dir /tmp/yt8m_bench/frame] [--batch_size 128] [--repeats 5]

Writes official-size synthetic frame-level data (rgb 1024 + audio 128 bytes per frame, 120-300 frames per video) to
--data_dir unless it is there, then times, interleaved and repeated on the same files:

* raw: `tf.data.TFRecordDataset(files)` batched, no parsing (the I/O floor), sequential and with parallel reads
  (the faster one is the floor);
* the reader in the training configuration, `FrameLevelReader(...).dataset(shuffle=True, drop_remainder=True)`,
  with float frames and with `quantized=True` (what the trainer, eval and inference use);
* the same for the reader of the commit before this work (bench/reference.py), for the before/after table.

Videos/s and MB/s (TFRecord bytes) are medians; the ratios to the raw floor are what is compared with the targets
(>= 40% of raw, stretch 50%). Before timing it checks that the current reader yields exactly the batches of the
reference reader (deterministic order, float and quantized). The last line is the quantized reader's ratio to raw.
"""

import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def ensure_data(data_dir, shards, videos_per_shard):
    files = sorted(glob.glob(os.path.join(data_dir, "*.tfrecord")))
    if len(files) >= shards:
        return files[:shards]
    from yt8m_tf import synthetic
    print(f"writing {shards} x {videos_per_shard} frame-level videos (1024+128, 120-300 frames) to {data_dir}",
          flush=True)
    return synthetic.write_dataset(data_dir, level="frame", num_shards=shards, videos_per_shard=videos_per_shard,
                                   min_frames=120, max_frames=300, seed=6)


def check_same_batches(current, reference, pattern, batch_size, batches=3):
    import numpy as np

    for quantized in (False, True):
        new = current(quantized=quantized).dataset(pattern, batch_size)
        old = reference(quantized=quantized).dataset(pattern, batch_size)
        for index, (a, b) in enumerate(zip(new, old)):
            if index >= batches:
                break
            for key in b:
                x, y = a[key].numpy(), b[key].numpy()
                if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
                    raise AssertionError(f"batch {index} '{key}' differs from the reference reader (quantized="
                                         f"{quantized})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="/tmp/yt8m_bench/frame")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--videos_per_shard", type=int, default=500)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the files per timed run (amortises the "
                        "shuffle buffer's fill)")
    parser.add_argument("--no_reference", action="store_true", help="skip the before (reference commit) readers")
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import readers
    import reference

    files = ensure_data(args.data_dir, args.shards, args.videos_per_shard)
    pattern = ",".join(files)
    num_bytes = sum(os.path.getsize(f) for f in files)
    num_videos = args.epochs * int(tf.data.TFRecordDataset(files).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    num_bytes *= args.epochs
    batch = args.batch_size
    used = num_videos // batch * batch  # drop_remainder: the videos the training pipeline yields

    def drain(dataset):
        count = 0
        for element in dataset:
            count += 1
        return count

    def raw(parallel):
        def run():
            data = tf.data.TFRecordDataset(files * args.epochs, buffer_size=8 << 20,
                                           num_parallel_reads=tf.data.AUTOTUNE if parallel else None)
            drain(data.batch(batch).prefetch(tf.data.AUTOTUNE))
        return run

    def pipeline(cls, quantized):
        reader = cls("rgb,audio", "1024,128", 3862, max_frames=300, quantized=quantized)

        def run():
            drain(reader.dataset(pattern, batch, shuffle=True, drop_remainder=True, seed=0, num_epochs=args.epochs))
        return run

    candidates = {"raw read": raw(False), "raw read, parallel": raw(True),
                  "reader float": pipeline(readers.FrameLevelReader, False),
                  "reader quantized": pipeline(readers.FrameLevelReader, True)}
    before = None
    if not args.no_reference and reference.available():
        before = reference.load_readers()
        check_same_batches(lambda **kw: readers.FrameLevelReader(max_frames=300, **kw),
                           lambda **kw: before.FrameLevelReader(max_frames=300, **kw), files[0], batch)
        print(f"the reader yields the same batches as the reader of {before.ref} (float and quantized)", flush=True)
        candidates["before float"] = pipeline(before.FrameLevelReader, False)
        candidates["before quantized"] = pipeline(before.FrameLevelReader, True)

    cpu = common.CpuTimes()
    candidates = {name: cpu.wrap(name, fn) for name, fn in candidates.items()}
    load_before = common.load_average()
    times = common.interleave(candidates, args.repeats, warmup=1)
    load_after = common.load_average()
    medians = {name: common.median(t) for name, t in times.items()}
    floor_name = min(("raw read", "raw read, parallel"), key=lambda n: medians[n])
    floor = medians[floor_name]

    def rate(name):
        videos = num_videos if name.startswith("raw") else used
        return videos / medians[name]

    floor_rate = rate(floor_name)
    def cpu_per_video(name):
        videos = num_videos if name.startswith("raw") else used
        return common.median(cpu.seconds[name][1:]) / videos  # [0] is the warm-up

    floor_cpu = cpu_per_video(floor_name)
    rows = []
    for name in candidates:
        mb = num_bytes * (1 if name.startswith("raw") else used / num_videos) / medians[name] / 1e6
        rows.append([name, f"{rate(name):,.0f}", f"{mb:,.0f}", f"{rate(name) / floor_rate:.0%}",
                     f"{cpu_per_video(name) * 1e6:,.0f}", f"{floor_cpu / cpu_per_video(name):.0%}",
                     f"{min(times[name]):.2f} / {medians[name]:.2f}"])
        print(f"{name:22s} {rate(name):8,.0f} videos/s {mb:7,.0f} MB/s  {rate(name) / floor_rate:6.1%} of raw, "
              f"{cpu_per_video(name) * 1e6:5.0f} CPU-us/video ({floor_cpu / cpu_per_video(name):.0%} of raw's "
              "videos per CPU-second)", flush=True)
    ratio_q = rate("reader quantized") / floor_rate
    ratio_f = rate("reader float") / floor_rate
    text = f"""## Frame-level input pipeline vs raw TFRecord read

Machine: {common.machine()}.
Data: {len(files)} synthetic official-layout shards ({num_videos // args.epochs:,} videos,
{num_bytes / args.epochs / 1e9:.2f} GB, rgb 1024 + audio
128 bytes per frame, 120-300 frames, written by `yt8m_tf.synthetic` to `{args.data_dir}`). Batch {batch}; the readers
run in the training configuration `dataset(shuffle=True, drop_remainder=True)` (max_frames 300, 3862 classes) and
yield {used:,} videos per timed run ({args.epochs} epochs; the raw read reads the files {args.epochs} times too).
{args.repeats} interleaved runs of each after a warm-up pass (the files are in the
page cache), medians. Floor = the faster raw read (`{floor_name}`).

{common.table(["pipeline", "videos/s", "MB/s", "of raw read (wall)", "CPU-us per video",
               "of raw read (per CPU-second)", "min / median s per run"], rows)}

Load average (1 min) of the shared machine: {load_before:.1f} at the start, {load_after:.1f} at the end. The wall-time
ratio depends on how much of the 2 cores the run gets: the raw read is one thread that waits on I/O, the reader
parses on every core it gets, so contention from other processes lowers the reader's ratio. The CPU-time columns
(process user + system time, all threads) show the cost per video independently of that.

**Ratio to the raw read: quantized (the trainer's) {ratio_q:.0%}, float {ratio_f:.0%}; target >= 40% (stretch 50%).**
"""
    if before is not None:
        text += (f"\nBefore/after in this run (reader of commit {before.ref} vs now): quantized "
                 f"{rate('before quantized'):,.0f} -> {rate('reader quantized'):,.0f} videos/s "
                 f"({rate('reader quantized') / rate('before quantized'):.2f}x), float "
                 f"{rate('before float'):,.0f} -> {rate('reader float'):,.0f} videos/s "
                 f"({rate('reader float') / rate('before float'):.2f}x).\n")
    if not args.no_record:
        common.record("input_pipeline", text)
    print(f"input_pipeline: quantized reader {ratio_q:.3f} of raw read (float {ratio_f:.3f})")


if __name__ == "__main__":
    main()
