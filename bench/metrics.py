"""EvaluationMetrics (GAP, mAP, hit@1, PERR) against the official algorithm, 30k and 1M videos x 3862 classes
(issue #6, part 4).

    python bench/metrics.py [--repeats 3] [--large 1000000] [--large_baseline 300000]

Baseline: google/youtube-8m's algorithm, re-stated below (eval_util.EvaluationMetrics.accumulate + get with
average_precision_calculator / mean_average_precision_calculator): per video a Python loop with
`numpy.argpartition` for the top-k triplets and for PERR, a heap push per triplet (one global GAP calculator and
one per class for mAP), and at `get()` a Python sort of all triplets.

Candidates, fed the same batches of 1024 videos (generating them is not timed):
* headline: `EvaluationMetrics.accumulate_top_k` given the outputs of `top_k_step_outputs`, i.e. what the host does
  in eval.py, where the top-k is computed inside the model's step on the accelerator. The outputs are computed
  beforehand and not timed here (on an accelerator they come out of the model step);
* the top-k step alone (`top_k_step_outputs` in a tf.function) on this CPU, and the CPU end-to-end figures:
  `accumulate_top_k` with that step, and `accumulate(predictions, labels)` (which runs the dynamic-shape step).
Times cover every accumulate call and `get()`. Memory: tracemalloc's view of the numpy/Python heap (TensorFlow's
own buffers are not traced).

At 30k videos everything is interleaved and repeated (wall-time medians). At --large videos (1M) each candidate runs
once (the headline and the step timed apart in one pass) and the official algorithm is measured once on
--large_baseline videos (300k: about 1 GB of Python objects, 2-3 minutes), its `get()` also timed at a third of
that; it is estimated at --large from its accumulate loop's per-video cost between the two points and its `get()`
(Python sorts) scaled by n log n of the triplet count. These runs take minutes each and cannot be interleaved, so
the 1M speed-ups are ratios of process CPU time (all threads), which the machine's varying load does not inflate.
The last line prints the speed-ups.
"""

import argparse
import heapq
import math
import os
import random
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

CLASSES = 3862
BATCH = 1024
TOP_K = 20
HEADLINE = "accumulate_top_k given outputs"  # names of the candidates
STEP = "top_k_step_outputs alone"
WITH_STEP = "accumulate_top_k + step"
BEFORE = "accumulate before"


# ---- the official algorithm (google/youtube-8m eval_util.py, average_precision_calculator.py,
# ---- mean_average_precision_calculator.py), re-stated without TensorFlow --------------------------------------

class OfficialAP:
    def __init__(self, top_n=None):
        self._top_n, self._total_positives, self._heap = top_n, 0, []

    def accumulate(self, predictions, actuals, num_positives=None):
        if num_positives is not None:
            self._total_positives += num_positives
        heap, topk = self._heap, self._top_n
        for i in range(len(predictions)):
            if topk is None or len(heap) < topk:
                heapq.heappush(heap, (predictions[i], actuals[i]))
            elif predictions[i] > heap[0][0]:
                heapq.heappop(heap)
                heapq.heappush(heap, (predictions[i], actuals[i]))

    def peek_ap_at_n(self):
        import numpy
        if not self._heap:
            return 0
        predlists = numpy.array(list(zip(*self._heap)))
        return self.ap_at_n(predlists[0], predlists[1], n=self._top_n, total_num_positives=self._total_positives)

    @staticmethod
    def ap_at_n(predictions, actuals, n=20, total_num_positives=None):
        import numpy
        random.seed(0)
        order = list(range(len(predictions)))
        random.shuffle(order)
        predictions, actuals = predictions[order], actuals[order]
        sortidx = sorted(range(len(predictions)), key=lambda k: predictions[k], reverse=True)
        numpos = numpy.size(numpy.where(actuals > 0)) if total_num_positives is None else total_num_positives
        if numpos == 0:
            return 0
        if n is not None:
            numpos = min(numpos, n)
        delta_recall, poscount, ap = 1.0 / numpos, 0.0, 0.0
        r = len(sortidx) if n is None else min(len(sortidx), n)
        for i in range(r):
            if actuals[sortidx[i]] > 0:
                poscount += 1
                ap += poscount / (i + 1) * delta_recall
        return ap


def official_top_k_by_class(predictions, labels, k):
    import numpy
    k = min(k, predictions.shape[1])
    num_classes = predictions.shape[1]
    triplets = []
    for video in range(predictions.shape[0]):
        indices = numpy.argpartition(predictions[video], -k)[-k:]
        triplets.extend((index, predictions[video][index], labels[video][index]) for index in indices)
    out_predictions = [[] for _ in range(num_classes)]
    out_labels = [[] for _ in range(num_classes)]
    for triplet in triplets:
        out_predictions[triplet[0]].append(triplet[1])
        out_labels[triplet[0]].append(triplet[2])
    return out_predictions, out_labels, [numpy.sum(labels[:, i]) for i in range(num_classes)]


def official_perr(predictions, actuals):
    import numpy
    aggregated = 0.0
    for row in range(actuals.shape[0]):
        num_labels = int(numpy.sum(actuals[row]))
        top_indices = numpy.argpartition(predictions[row], -num_labels)[-num_labels:]
        item = 0.0
        for label_index in top_indices:
            if predictions[row][label_index] > 0:
                item += actuals[row][label_index]
        item /= num_labels if num_labels else 1  # the official divides; 0 positives give 0/0 -> nan there
        aggregated += item
    return aggregated / actuals.shape[0]


class OfficialMetrics:
    """eval_util.EvaluationMetrics: hit@1, PERR, GAP and mAP (top_n=None as eval.py uses it)."""

    def __init__(self, num_classes, top_k):
        self.top_k, self.num_classes = top_k, num_classes
        self.gap = OfficialAP()
        self.per_class = [OfficialAP() for _ in range(num_classes)]
        self.sum_hit, self.sum_perr, self.num = 0.0, 0.0, 0

    def accumulate(self, predictions, labels):
        import numpy
        batch = predictions.shape[0]
        top = numpy.argmax(predictions, 1)
        self.sum_hit += float(numpy.mean(labels[numpy.arange(batch), top])) * batch
        self.sum_perr += official_perr(predictions, labels) * batch
        sparse_predictions, sparse_labels, num_positives = official_top_k_by_class(predictions, labels, self.top_k)
        for c in range(self.num_classes):
            self.per_class[c].accumulate(sparse_predictions[c], sparse_labels[c], num_positives[c])
        self.gap.accumulate([p for ps in sparse_predictions for p in ps], [a for ls in sparse_labels for a in ls],
                            sum(num_positives))
        self.num += batch

    def get(self):
        import numpy
        aps = [calc.peek_ap_at_n() for calc in self.per_class]
        aps = [ap for ap, calc in zip(aps, self.per_class) if calc._total_positives > 0]
        return {"gap": self.gap.peek_ap_at_n(), "map": float(numpy.mean(aps)), "hit_at_one": self.sum_hit / self.num,
                "perr": self.sum_perr / self.num}


# ---- data ------------------------------------------------------------------------------------------------------

def batches(num_videos, seed=0):
    """Deterministic random batches: ~3 positives per video; positives score higher on average; distinct scores."""
    rng = np.random.default_rng(seed)
    for start in range(0, num_videos, BATCH):
        n = min(BATCH, num_videos - start)
        labels = np.zeros((n, CLASSES), np.float32)
        rows = np.repeat(np.arange(n), 3)
        labels[rows, rng.integers(0, CLASSES, 3 * n)] = 1.0
        predictions = rng.random((n, CLASSES), dtype=np.float32) * 0.5 + labels * rng.random((n, 1),
                                                                                              dtype=np.float32)
        yield predictions, labels


def clock():
    """(wall seconds, CPU seconds of this process, all threads)."""
    return np.array([time.perf_counter(), time.process_time()])


def rss_mb():
    """Resident memory of this process (MB), from /proc."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1e3


def official_at(num_videos):
    """The official algorithm streamed over `num_videos` videos (seed 1), `get()` timed at a third of them and at
    the end: [(videos, accumulate (wall, CPU) seconds so far, get() (wall, CPU) seconds)], MB of resident memory
    it holds at the end."""
    m, accumulated, points, rss_before = OfficialMetrics(CLASSES, TOP_K), np.zeros(2), [], rss_mb()
    for p, l in batches(num_videos, seed=1):
        start = clock()
        m.accumulate(p, l)
        accumulated += clock() - start
        if (not points and m.num >= num_videos // 3) or m.num == num_videos:
            held = rss_mb() - rss_before
            start = clock()
            m.get()
            points.append((m.num, accumulated.copy(), clock() - start))
    return points, held


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=30000)
    parser.add_argument("--large", type=int, default=1000000)
    parser.add_argument("--large_baseline", type=int, default=300000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no_record", action="store_true")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import reference
    from yt8m_tf import metrics

    load_start = common.load_average()
    step = tf.function(lambda p, l: metrics.top_k_step_outputs(p, l, TOP_K, xla_compatible=True))

    def step_outputs(p, l):
        return {k: v.numpy() for k, v in step(p, l).items()}

    before = reference.load_module("yt8m_tf/metrics.py") if reference.available() else None
    data = list(batches(args.videos))
    outputs = [step_outputs(p, l) for p, l in data]  # the headline's input, computed beforehand
    results = {}

    def official():
        m = OfficialMetrics(CLASSES, TOP_K)
        for p, l in data:
            m.accumulate(p, l)
        results["official"] = m.get()

    def given_outputs():
        m = metrics.EvaluationMetrics(CLASSES, top_k=TOP_K)
        for fed in outputs:
            m.accumulate_top_k(**fed)
        results[HEADLINE] = m.get()

    def step_alone():
        for p, l in data:
            step_outputs(p, l)

    def ours_top_k():
        m = metrics.EvaluationMetrics(CLASSES, top_k=TOP_K)
        for p, l in data:
            m.accumulate_top_k(**step_outputs(p, l))
        results[WITH_STEP] = m.get()

    def ours_accumulate():
        m = metrics.EvaluationMetrics(CLASSES, top_k=TOP_K)
        for p, l in data:
            m.accumulate(p, l)
        results["accumulate"] = m.get()

    def before_accumulate():
        m = before.EvaluationMetrics(CLASSES, top_k=TOP_K)
        for p, l in data:
            m.accumulate(p, l)

    metrics.EvaluationMetrics(CLASSES, top_k=TOP_K).accumulate(*data[0])  # traces accumulate's step function
    candidates = {"official": official, HEADLINE: given_outputs, STEP: step_alone, WITH_STEP: ours_top_k,
                  "accumulate": ours_accumulate}
    if before is not None:
        candidates[BEFORE] = before_accumulate
    times = common.interleave(candidates, args.repeats, warmup=0)
    # float32 scores of 30k x 3862 random videos have ties, whose order the official code randomises: the GAP and
    # mAP then differ in the 4th digit. Exact agreement is checked on float64 scores (no ties) of 2 batches.
    for path in (HEADLINE, WITH_STEP, "accumulate"):
        for key in ("gap", "map", "hit_at_one", "perr"):
            if abs(results[path][key] - results["official"][key]) > 2e-3:
                raise AssertionError(f"{path} {key} {results[path][key]} != official {results['official'][key]}")
    exact_official, exact_ours = OfficialMetrics(CLASSES, TOP_K), metrics.EvaluationMetrics(CLASSES, top_k=TOP_K)
    for p, l in data[:2]:
        p = p.astype(np.float64) + np.random.default_rng(5).random(p.shape) * 1e-9
        exact_official.accumulate(p, l)
        exact_ours.accumulate(p, l)
    del p, l
    a, b = exact_official.get(), exact_ours.get()
    for key in ("gap", "map", "hit_at_one", "perr"):
        if abs(a[key] - b[key]) > 1e-4:  # the official sums AP in float32 (float32 label counts): ~1e-5 off
            raise AssertionError(f"float64 check: {key} {b[key]} != official {a[key]}")
    small = {name: common.median(seconds) for name, seconds in times.items()}
    base = small["official"]
    for name, seconds in small.items():
        print(f"{args.videos} videos: {name} {seconds:.3f}s" + ("" if name == STEP else f" -> {base / seconds:.1f}x"),
              flush=True)
    del data, outputs

    # ---- large: streaming, memory, CPU time ----
    def stream(path, num_videos):
        """(wall, CPU) seconds of the accumulate calls + get(), of get() alone and of the step (HEADLINE: computed
        before each call, timed apart); largest memory one accumulate call allocates on top of what is held, the
        same for get(); bytes held by the metric's top-k columns (allocated capacity)."""
        m = metrics.EvaluationMetrics(CLASSES, top_k=TOP_K)
        accumulated, step_seconds, transient = np.zeros(2), np.zeros(2), 0
        tracemalloc.start()
        for p, l in batches(num_videos, seed=1):
            if path == HEADLINE:
                start = clock()
                fed = step_outputs(p, l)
                step_seconds += clock() - start
            tracemalloc.reset_peak()
            held = tracemalloc.get_traced_memory()[0]
            start = clock()
            if path == HEADLINE:
                m.accumulate_top_k(**fed)
            else:
                m.accumulate(p, l)
            accumulated += clock() - start
            transient = max(transient, tracemalloc.get_traced_memory()[1] - held)
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0]
        start = clock()
        m.get()
        get_seconds = clock() - start
        get_extra = tracemalloc.get_traced_memory()[1] - held
        tracemalloc.stop()
        return {"seconds": accumulated + get_seconds, "get": get_seconds, "step": step_seconds,
                "memory": (transient, get_extra), "storage": sum(a.nbytes for a in m._store._data.values())}

    large = {}
    for path in (HEADLINE, "accumulate"):
        large[path] = r = stream(path, args.large)
        print(f"{args.large} videos: {path} {r['seconds'][0]:.1f}s, CPU {r['seconds'][1]:.1f}s (get() "
              f"{r['get'][1]:.1f}s, step {r['step'][1]:.1f}s), largest allocation of one accumulate call "
              f"{r['memory'][0] / 1e6:.0f} MB, of get() {r['memory'][1] / 1e6:.0f} MB, top-k storage "
              f"{r['storage'] / 1e6:.0f} MB", flush=True)
    large[STEP] = {"seconds": large[HEADLINE]["step"]}
    large[WITH_STEP] = {"seconds": large[HEADLINE]["seconds"] + large[HEADLINE]["step"]}

    points, official_mb = official_at(args.large_baseline)
    (v1, a1, g1), (v2, a2, g2) = points
    rate = (a2 - a1) / (v2 - v1)  # (wall, CPU) seconds per video between the two points
    n_log_n = lambda videos: videos * TOP_K * math.log(videos * TOP_K)  # noqa: E731
    estimate_acc, estimate_get = a2 + (args.large - v2) * rate, g2 * n_log_n(args.large) / n_log_n(v2)
    estimate = estimate_acc + estimate_get
    linear_from_first = (a1 + g1)[1] * args.large / v1
    for v, a, g in points:
        print(f"official {v} videos: accumulate CPU {a[1]:.1f}s ({a[1] / v * 1e3:.3f} ms/video), get() CPU "
              f"{g[1]:.1f}s ({g[1] / v * 1e3:.3f} ms/video); wall {a[0] + g[0]:.1f}s", flush=True)
    print(f"official {args.large} videos estimated CPU {estimate[1]:.0f}s (accumulate {estimate_acc[1]:.0f}s at "
          f"{rate[1] * 1e3:.3f} ms/video, get() {estimate_get[1]:.0f}s); linear from {v1}: {linear_from_first:.0f}s; "
          f"holds {official_mb:.0f} MB at {v2}", flush=True)
    load_end = common.load_average()

    names = {HEADLINE: "**EvaluationMetrics.accumulate_top_k given the step's top-k outputs (host side)**",
             STEP: "top_k_step_outputs alone, tf.function on this CPU (the step's top-k part; no metric)",
             WITH_STEP: "EvaluationMetrics.accumulate_top_k + top_k_step_outputs on this CPU",
             "accumulate": "EvaluationMetrics.accumulate (dynamic-shape top-k on this CPU inside)",
             BEFORE: f"EvaluationMetrics.accumulate before (commit {reference.BEFORE_ISSUE_6})"}
    rows_small = [["official (Python loop, argpartition, heaps, sort)", f"{base:.2f}", "1.0x"]]
    rows_small += [[names[name], f"{seconds:.3f}", "" if name == STEP else f"{base / seconds:.1f}x"]
                   for name, seconds in small.items() if name != "official"]
    rows_large = [[f"official, measured on {v:,} videos", f"{a[0] + g[0]:.0f}", f"{a[1] + g[1]:.0f}", "",
                   f"{g[1]:.0f}", "", "", ""] for v, a, g in points]
    rows_large.append(["official, estimated (see above)", f"{estimate[0]:.0f}", f"{estimate[1]:.0f}", "1.0x",
                       f"{estimate_get[1]:.0f}", "", "", ""])
    for name in (HEADLINE, STEP, WITH_STEP, "accumulate"):
        r = large[name]
        memory = ([f"{r['get'][1]:.1f}", f"{r['storage'] / 1e6:.0f}"] + [f"{x / 1e6:.0f}" for x in r["memory"]]
                  if "get" in r else ["", "", "", ""])
        rows_large.append([names[name], f"{r['seconds'][0]:.1f}", f"{r['seconds'][1]:.1f}",
                           "" if name == STEP else f"{estimate[1] / r['seconds'][1]:.1f}x", *memory])
    ratio = {(name, size): base / small[name] if size == args.videos else estimate[1] / large[name]["seconds"][1]
             for name in (HEADLINE, WITH_STEP, "accumulate") for size in (args.videos, args.large)}
    short = lambda videos: f"{videos // 1000}k"  # noqa: E731
    headline = ", ".join(f"{short(s)} {ratio[HEADLINE, s]:.1f}x" for s in (args.videos, args.large))
    cpu = "; ".join(f"{name} " + ", ".join(f"{short(s)} {ratio[name, s]:.1f}x" for s in (args.videos, args.large))
                    for name in ("accumulate", WITH_STEP))
    growth = ("Both per-video costs grow with n, so this is still a low estimate. "
              if rate[1] > a1[1] / v1 and g2[1] / v2 > g1[1] / v1 else "")
    text = f"""## Metrics: EvaluationMetrics vs the official algorithm

Machine: {common.machine()}. Load average (1 min) {load_start:.1f} at the start, {load_end:.1f} at the end.
{CLASSES} classes, top_k {TOP_K}, batches of {BATCH} random videos (~3 positives each). Times include every
`accumulate*` call and `get()` (GAP, mAP, hit@1, PERR), not the generation of the batches.

* **Headline**: `accumulate_top_k` fed the outputs of `top_k_step_outputs` (B x {TOP_K} scores, classes, labels,
  per-class positive counts, hit@1 and PERR per video): the host's whole share of eval.py, where the top-k runs
  inside the model's step on the accelerator. Those outputs are computed beforehand and not timed (on an accelerator
  they come out of the model step; their copy to the host is the eval loop's, not timed here either).
* The step's top-k part on this CPU: `top_k_step_outputs` (`xla_compatible=True`, in a `tf.function`) alone, and the
  CPU end-to-end figures: `accumulate_top_k` with that step (eval.py with `jit_compile=True`, here without XLA), and
  `accumulate(predictions, labels)`, which runs the dynamic-shape step (threshold top-k; eval.py's default
  `jit_compile=False`) and then `accumulate_top_k`.

**{args.videos:,} videos**: all interleaved ({args.repeats} rounds), wall-time medians. The four metrics are checked
against the official ones: within 2e-3 on these float32 scores (ties, whose order the official code randomises) and
within 1e-4 on float64 scores without ties (2 batches; the official code accumulates AP in float32 because the label
counts are float32, about 1e-5 off).

{common.table(["implementation", "seconds", "speed-up"], rows_small)}

**{args.large:,} videos**: each runs once, for minutes, while the shared machine's load varies, so the speed-ups are
ratios of process CPU time (user + system, all threads; the official code and the headline use one thread, the
TensorFlow step can use both cores, so any parallel work of it counts twice). The headline and its step are timed apart
in one pass (their sum is the `accumulate_top_k` + step row). The official algorithm is too slow and too large to
run at this size here (it holds {official_mb:,.0f} MB of Python objects at {v2:,} videos): it is measured streaming
{v2:,} videos with `get()` also timed at {v1:,}. Its accumulate loop costs {a1[1] / v1 * 1e3:.3f} ms CPU per video
up to {v1:,} and {rate[1] * 1e3:.3f} ms from {v1:,} to {v2:,}; its `get()` (Python sorts of all triplets)
{g1[1] / v1 * 1e3:.3f} and {g2[1] / v2 * 1e3:.3f} ms per video. The estimate at {args.large:,}: the measured {v2:,}
plus the remaining videos at the later per-video cost ({estimate_acc[1]:.0f} s), and `get()` scaled by n log n of
the triplets from {v2:,} ({estimate_get[1]:.0f} s): {estimate[1]:.0f} s of CPU.
{growth}(A linear extrapolation from {v1:,} videos, as recorded before, gives {linear_from_first:.0f} s.)
Memory (tracemalloc, numpy/Python heap; TensorFlow's buffers are not traced): what the metric holds, i.e. its top-k columns (score float32 + class int16 +
label bool = 7 bytes x {TOP_K} per video, allocated capacity grows by doubling), and on top of that the largest
amount one `accumulate*` call and `get()` allocate (the batch fed is the caller's and not counted).

{common.table(["implementation", "wall s", "CPU s", "speed-up (CPU)", "of which get() CPU s",
               "top-k storage MB (capacity)", "largest extra MB of one accumulate call", "extra MB of get()"],
              rows_large)}

**Speed-ups of the headline (`accumulate_top_k` given the step's outputs): {headline}. CPU end-to-end: {cpu}
(targets >= 10x at 30k, >= 20x at 1M; 30k on wall time, 1M on CPU time).**
"""
    if not args.no_record:
        common.record("metrics", text)
    print(f"metrics: headline accumulate_top_k given the step's outputs {headline}; CPU end-to-end {cpu} "
          "(30k wall, 1M CPU time)")


if __name__ == "__main__":
    main()
