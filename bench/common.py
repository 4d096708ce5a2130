"""Shared helpers of the benchmarks: the machine's description, interleaved timing and the BENCHMARKS.md writer.

Every benchmark compares a candidate with a baseline measured in the same process on the same input, the two
interleaved and repeated, and reports the ratio of the medians: the machine is shared (2 cores, other jobs), so
absolute numbers drift between runs while ratios of interleaved runs stay put. Nothing here imports TensorFlow
(bench/gpu_step.py runs where there is none).
"""

import datetime
import os
import platform
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")

HEADER = """# Benchmarks

Written by the scripts in `bench/` (each one rewrites its own section; run `python bench/NAME.py`). The machine is
shared, so every figure that is compared with a target is a RATIO against a baseline measured in the same run on the
same input, the two interleaved and repeated, medians taken; absolute rates are given for orientation only and vary
with the load of the machine.
"""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine(extra=""):
    """One line describing where the numbers were taken."""
    parts = [f"CPU {cpu_model()}", f"{os.cpu_count()} cores (os.cpu_count)"]
    try:
        affinity = len(os.sched_getaffinity(0))
        if affinity != os.cpu_count():
            parts.append(f"{affinity} usable")
    except AttributeError:
        pass
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        try:
            import tensorflow as tf
            parts.append(f"TensorFlow {tf.__version__}")
        except ImportError:
            pass
    try:
        import keras
        parts.append(f"Keras {keras.__version__} ({keras.backend.backend()} backend)")
    except ImportError:
        pass
    parts.append(f"Python {platform.python_version()}")
    if extra:
        parts.append(extra)
    return ", ".join(parts)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(candidates, repeats, warmup=1):
    """Runs each callable of `candidates` (name -> fn) in turn, `repeats` rounds (after `warmup` untimed rounds),
    and returns name -> list of seconds. The order inside a round rotates so no one always runs first."""
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(timed(candidates[name]))
    return times


def load_average():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


class CpuTimes:
    """Wraps callables to record the process CPU time (user + system, all threads) of each call by name."""

    def __init__(self):
        self.seconds = {}

    def wrap(self, name, fn):
        import resource

        def run():
            before = resource.getrusage(resource.RUSAGE_SELF)
            fn()
            after = resource.getrusage(resource.RUSAGE_SELF)
            used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            self.seconds.setdefault(name, []).append(used)
        return run


def median(values):
    return statistics.median(values)


def record(section, markdown):
    """Replaces (or appends) the section `section` of BENCHMARKS.md with `markdown`."""
    begin, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"{begin}\n{markdown.rstrip()}\n\n_Recorded {stamp} by `bench/{section}.py`._\n{end}"
    text = open(BENCHMARKS_MD).read() if os.path.exists(BENCHMARKS_MD) else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = BENCHMARKS_MD + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, BENCHMARKS_MD)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
