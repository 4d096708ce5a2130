"""Frame-level input pipeline: CPU time per video of each path against the raw read of the same files (issue #15).

    python bench/input_pipeline.py [--data_dir /tmp/yt8m_bench/frame] [--cache_dir /tmp/yt8m_bench/cache]

Writes official-size synthetic frame-level data (rgb 1024 + audio 128 bytes per frame, 120-300 frames per video) to
--data_dir unless it is there, builds the parsed-video cache of `readers.cache` in --cache_dir (timed once: its
one-time cost and its size on disk are reported), then times, interleaved and repeated on the same files:

* raw: `tf.data.TFRecordDataset(files)` batched, no parsing, sequential and with parallel reads (the one with less
  CPU per video is the floor);
* the reader in the training configuration, `FrameLevelReader(...).dataset(shuffle=True, drop_remainder=True)`,
  quantized (what train/eval/inference use) and float, uncached and with `cache_dir` (the trainer's
  --input_cache_dir);
* the uncached reader of the commit before this work (bench/reference.py), for the before/after rows.

The figure compared is the process CPU time (user + system, all threads) per video: it holds on a loaded machine,
where wall time does not (the raw read is one thread that waits on I/O, the readers parse on every core they get).
A 16-core host spending all its cores on one path would feed 16 / (CPU seconds per video) videos/s. Before timing,
the cached batches are checked equal to the uncached ones (shuffled with deterministic=True, float and quantized,
with a partial last batch) and the uncached ones to the reader before this work (file order). The last line is the
cached quantized reader's CPU per video as a multiple of the raw read's.
"""

import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CORES = 16


def ensure_data(data_dir, shards, videos_per_shard):
    files = sorted(glob.glob(os.path.join(data_dir, "*.tfrecord")))
    if len(files) >= shards:
        return files[:shards]
    from yt8m_tf import synthetic
    print(f"writing {shards} x {videos_per_shard} frame-level videos (1024+128, 120-300 frames) to {data_dir}",
          flush=True)
    return synthetic.write_dataset(data_dir, level="frame", num_shards=shards, videos_per_shard=videos_per_shard,
                                   min_frames=120, max_frames=300, seed=6)


def check_same_batches(new, old, what, batches=4):
    import numpy as np

    count = 0
    for index, (a, b) in enumerate(zip(new, old)):
        if index >= batches:
            break
        count += 1
        for key in b:
            x, y = a[key].numpy(), b[key].numpy()
            if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
                raise AssertionError(f"batch {index} '{key}' differs: {what}")
    if not count:
        raise AssertionError(f"no batch compared: {what}")


def disk_bytes(folder):
    return sum(os.path.getsize(os.path.join(d, name)) for d, _, names in os.walk(folder) for name in names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="/tmp/yt8m_bench/frame")
    parser.add_argument("--cache_dir", default="/tmp/yt8m_bench/cache", help="emptied first")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--videos_per_shard", type=int, default=500)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the files per timed run (amortises the "
                        "shuffle buffer's fill)")
    parser.add_argument("--no_reference", action="store_true", help="skip the reader before this work")
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    import resource
    import shutil

    import tensorflow as tf

    import readers
    import reference

    files = ensure_data(args.data_dir, args.shards, args.videos_per_shard)
    pattern = ",".join(files)
    file_bytes = sum(os.path.getsize(f) for f in files)
    videos = int(tf.data.TFRecordDataset(files).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    num_videos = args.epochs * videos
    batch = args.batch_size
    used = num_videos // batch * batch  # drop_remainder: the videos the training pipeline yields

    def reader(quantized, cls=readers.FrameLevelReader):
        return cls("rgb,audio", "1024,128", 3862, max_frames=300, quantized=quantized)

    # ---- the cache: built once (timed), then checked against the uncached batches ------------------------------
    shutil.rmtree(args.cache_dir, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    build_s = common.timed(lambda: reader(True).dataset(pattern, batch, cache_dir=args.cache_dir))
    after = resource.getrusage(resource.RUSAGE_SELF)
    build_cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / videos
    cache_bytes = disk_bytes(args.cache_dir)
    for quantized in (True, False):
        config = dict(shuffle=True, seed=5, num_epochs=1, deterministic=True)
        check_same_batches(reader(quantized).dataset(pattern, batch, cache_dir=args.cache_dir, **config),
                           reader(quantized).dataset(pattern, batch, **config), f"cached vs uncached, quantized="
                           f"{quantized}", batches=videos // batch + 1)
    print(f"the cached reader yields the uncached reader's batches ({videos // batch + 1} shuffled batches, float and "
          f"quantized)", flush=True)

    def drain(dataset):
        for _ in dataset:
            pass

    def raw(parallel):
        data = tf.data.TFRecordDataset(files * args.epochs, buffer_size=8 << 20,
                                       num_parallel_reads=tf.data.AUTOTUNE if parallel else None)
        data = data.batch(batch).prefetch(tf.data.AUTOTUNE)
        return lambda: drain(data)

    def pipeline(quantized, cache_dir=None, cls=readers.FrameLevelReader):
        cache = {"cache_dir": cache_dir} if cache_dir else {}  # the reader before this work has no cache_dir
        data = reader(quantized, cls).dataset(pattern, batch, shuffle=True, drop_remainder=True, seed=0,
                                              num_epochs=args.epochs, **cache)
        return lambda: drain(data)  # a new iterator (and shuffle order) every run

    candidates = {"raw read": raw(False), "raw read, parallel": raw(True),
                  "reader quantized, cached": pipeline(True, args.cache_dir),
                  "reader quantized": pipeline(True),
                  "reader float, cached": pipeline(False, args.cache_dir),
                  "reader float": pipeline(False)}
    old = None
    if not args.no_reference and reference.available(reference.BEFORE_ISSUE_15):
        old = reference.load_readers(reference.BEFORE_ISSUE_15)
        for quantized in (True, False):
            check_same_batches(reader(quantized).dataset(pattern, batch), reader(quantized, old.FrameLevelReader)
                               .dataset(pattern, batch), f"uncached vs {old.ref}, quantized={quantized}")
        print(f"the uncached reader yields the batches of the reader of {old.ref} (file order, float and quantized)",
              flush=True)
        candidates["before quantized"] = pipeline(True, cls=old.FrameLevelReader)
        candidates["before float"] = pipeline(False, cls=old.FrameLevelReader)

    # ---- timing ------------------------------------------------------------------------------------------------
    cpu = common.CpuTimes()
    candidates = {name: cpu.wrap(name, fn) for name, fn in candidates.items()}
    load_before = common.load_average()
    times = common.interleave(candidates, args.repeats, warmup=1)
    load_after = common.load_average()

    def count(name):
        return num_videos if name.startswith("raw") else used

    def cpu_per_video(name):
        return common.median(cpu.seconds[name][1:]) / count(name)  # [0] is the warm-up

    floor_name = min(("raw read", "raw read, parallel"), key=cpu_per_video)
    floor = cpu_per_video(floor_name)
    rows = []
    for name in candidates:
        per_video = cpu_per_video(name)
        rate = count(name) / common.median(times[name])
        rows.append([name, f"{per_video * 1e6:,.0f}", f"{per_video / floor:.2f}x", f"{CORES / per_video:,.0f}",
                     f"{rate:,.0f}", f"{min(times[name]):.2f} / {common.median(times[name]):.2f}"])
        print(f"{name:26s} {per_video * 1e6:6.0f} CPU-us/video = {per_video / floor:5.2f}x raw, "
              f"{CORES / per_video:8,.0f} videos/s on {CORES} cores, {rate:7,.0f} videos/s here", flush=True)
    ratio = cpu_per_video("reader quantized, cached") / floor
    uncached = cpu_per_video("reader quantized") / floor
    text = f"""## Frame-level input pipeline vs raw TFRecord read

Machine: {common.machine()}.
Data: {len(files)} synthetic official-layout shards ({videos:,} videos, {file_bytes / 1e9:.2f} GB, rgb 1024 + audio
128 bytes per frame, 120-300 frames, written by `yt8m_tf.synthetic` to `{args.data_dir}`). Batch {batch}; the readers
run in the training configuration `dataset(shuffle=True, drop_remainder=True)` (max_frames 300, 3862 classes) and
yield {used:,} videos per timed run ({args.epochs} epochs; the raw read reads the files {args.epochs} times too).
{args.repeats} interleaved runs of each after a warm-up pass (the files are in the page cache), medians; each dataset is
built once and iterated anew every run (steady state: tracing and the cache's start-up are not counted).
Cost = process CPU time (user + system, all threads) per video, which holds on a loaded machine where wall time
does not; floor = the raw read with less CPU per video (`{floor_name}`). Projected rate = {CORES} cores / CPU time
per video (a {CORES}-core host spending every core on this path).

{common.table(["pipeline", "CPU-us per video", "of raw read", f"projected videos/s, {CORES} cores",
               "videos/s here (wall)", "min / median s per run"], rows)}

Cache (`--input_cache_dir`, `readers.cache`): built once in {build_s:.1f} s, {build_cpu * 1e6:,.0f} CPU-us per video
(read + parse + `Dataset.save`, with the one-time tracing and ~0.25 CPU-s per file: {videos // len(files):,} videos per
file here); {cache_bytes / videos / 1e3:,.1f} KB per video on disk against
{file_bytes / videos / 1e3:,.1f} KB of TFRecord ({cache_bytes / file_bytes:.0%}). Checked before timing: the cached
batches equal the uncached ones (all {videos // batch + 1} shuffled batches of one epoch, float and quantized).

Load average (1 min) of the shared machine: {load_before:.1f} at the start, {load_after:.1f} at the end.

**CPU per video / raw read's: quantized (the trainer's) cached {ratio:.2f}x, uncached {uncached:.2f}x; target <= 2x
(bar 3x).**
"""
    if old is not None:
        text += (f"\nBefore/after in this run (uncached reader of commit {old.ref} vs now): quantized "
                 f"{cpu_per_video('before quantized') * 1e6:,.0f} -> {cpu_per_video('reader quantized') * 1e6:,.0f} "
                 f"CPU-us per video, float {cpu_per_video('before float') * 1e6:,.0f} -> "
                 f"{cpu_per_video('reader float') * 1e6:,.0f}.\n")
    if not args.no_record:
        common.record("input_pipeline", text)
    print(f"input_pipeline: cached quantized reader {ratio:.2f}x the raw read's CPU per video (uncached {uncached:.2f}x)")


if __name__ == "__main__":
    main()
