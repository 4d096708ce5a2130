"""Label statistics pass (`yt8m_tf.label_stats.compute`) over the real 2018 video-level shards: videos/s, and that
memory does not grow with the number of videos (issue #6, part 5).

    python bench/label_stats.py [--data_dir /work/shared/data/yt8m/v2-video] [--repeats 3]

Each run is a fresh Python process (so its peak RSS is its own) computing the statistics of the first 10 shards or
of all 100 (28,792 videos), interleaved and repeated. Reported: the pass's own time (`seconds` of the result: file
listing, reading, parsing the labels and counting), videos/s, the peak RSS of the process (ru_maxrss: TensorFlow,
the 3862 x 3862 int32 accumulator and the int64 result included) and tracemalloc's peak of the numpy heap during
`compute`. The last line prints the ratio of the peaks, 100 shards / 10 shards (1.0 = memory independent of the
number of videos).
"""

import argparse
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

CHILD = r"""
import json, os, resource, sys, tracemalloc
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
sys.path.insert(0, sys.argv[1])
from yt8m_tf import label_stats
files = json.loads(sys.argv[2])
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
stats = label_stats.compute(files, 3862)
traced = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"seconds": stats["seconds"], "videos": stats["num_videos"], "traced_peak": traced,
                  "rss_before_kb": rss_before, "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run_child(files):
    out = subprocess.run([sys.executable, "-c", CHILD, common.ROOT, json.dumps(files)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="/work/shared/data/yt8m/v2-video")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    files = sorted(glob.glob(os.path.join(args.data_dir, "*.tfrecord")))
    if len(files) < 20:
        raise SystemExit(f"need the real shards in {args.data_dir}")
    sets = {"10 shards": files[:10], f"{len(files)} shards": files}
    results = {name: [] for name in sets}
    for r in range(args.repeats):
        for name in (list(sets) if r % 2 == 0 else list(sets)[::-1]):
            results[name].append(run_child(sets[name]))
    rows, summary = [], {}
    for name, runs in results.items():
        seconds = common.median([x["seconds"] for x in runs])
        videos = runs[0]["videos"]
        rss = common.median([x["rss_peak_kb"] for x in runs]) / 1024
        base = common.median([x["rss_before_kb"] for x in runs]) / 1024
        traced = common.median([x["traced_peak"] for x in runs]) / 1e6
        summary[name] = {"rate": videos / seconds, "rss": rss, "traced": traced}
        rows.append([name, f"{videos:,}", f"{seconds:.2f}", f"{videos / seconds:,.0f}", f"{base:,.0f}", f"{rss:,.0f}",
                     f"{traced:,.0f}"])
        print(f"{name}: {videos} videos in {seconds:.2f}s = {videos / seconds:,.0f} videos/s, peak RSS {rss:,.0f} MB "
              f"(before compute {base:,.0f} MB), traced numpy peak {traced:,.0f} MB", flush=True)
    small, large = summary["10 shards"], summary[f"{len(files)} shards"]
    rss_ratio, traced_ratio = large["rss"] / small["rss"], large["traced"] / small["traced"]
    text = f"""## Label statistics pass over the real 2018 video-level shards

Machine: {common.machine()}.
`yt8m_tf.label_stats.compute(files, 3862)` (labels-only parse, sparse pair counting into one int32 3862 x 3862
accumulator) over `{args.data_dir}`; each run a fresh process, the two sizes interleaved, {args.repeats} runs each,
medians. RSS = the process's peak resident memory (TensorFlow included); "before" = its peak before `compute`.

{common.table(["input", "videos", "seconds", "videos/s", "RSS before MB", "peak RSS MB", "traced numpy peak MB"],
              rows)}

**{len(files)} shards / 10 shards: {large['rate']:,.0f} vs {small['rate']:,.0f} videos/s; peak RSS ratio
{rss_ratio:.2f}, traced numpy peak ratio {traced_ratio:.2f} (1.00 = memory does not grow with the number of
videos).**
"""
    if not args.no_record:
        common.record("label_stats", text)
    print(f"label_stats: {large['rate']:.0f} videos/s; peak RSS {len(files)}/10 shards = {rss_ratio:.3f}")


if __name__ == "__main__":
    main()
