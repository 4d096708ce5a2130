"""What the command-line entry points share: quiet TensorFlow logs and one-line errors instead of traces.

Importing this module first (before anything imports TensorFlow) quiets TensorFlow's start-up lines, which users
of the starter code never saw: TF_CPP_MIN_LOG_LEVEL=2 hides the INFO and WARNING lines TensorFlow logs once running
(cpu_feature_guard, tf_record_dataset_op, local_rendezvous, ...), and `import_tensorflow_quietly` removes the lines
no environment variable reaches (see there).

Every program (train.py, eval.py, inference.py) runs its `main` through `run`, so that a user error, a bad flag, a
data error or an error raised deep inside TensorFlow (an incompatible checkpoint, out of memory, a lost worker, a
full disk) ends as one line ``prog: error: <message>`` on stderr with exit code 2. Set ``YT8M_DEBUG=1`` in the
environment to get the full Python traceback instead (for bug reports), and every TensorFlow start-up line.
Programming errors (a bug: TypeError, AttributeError, ...) are not caught: they keep their trace.
"""

import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_ERROR = 2

# absl-format lines (I0000 00:00:1796333163.952288   16179 port.cc:153] ...) of INFO / WARNING severity, absl's
# banner, cpu_feature_guard's second line, and the CUDA probe's error on a machine without a GPU driver.
_START_UP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|E\d{4} [\d:.]+ +\d+ \S+:\d+\] failed call to cuInit: "
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$")


def import_tensorflow_quietly():
    """Imports TensorFlow and lists its devices with stderr (file descriptor 2) captured, then writes back every
    captured line that is not start-up noise (_START_UP_NOISE).

    Why: TensorFlow's shared libraries log through absl from their static initialisers, before absl::InitializeLog
    and before TF_CPP_MIN_LOG_LEVEL is read, so "oneDNN custom operations are on" (port.cc), "Could not find cuda
    drivers" (cudart_stub.cc) and absl's "All log messages before absl::InitializeLog()" banner print at any
    TF_CPP_MIN_LOG_LEVEL, twice (two libraries); listing the devices probes CUDA, which logs "failed call to
    cuInit" as an error on a machine without a GPU driver. Only TF_ENABLE_ONEDNN_OPTS=0 would remove one of them,
    by turning oneDNN off. Nothing is filtered when TensorFlow is already imported, with TF_CPP_MIN_LOG_LEVEL=0 or
    with YT8M_DEBUG=1.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or debug():
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to quiet
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not _START_UP_NOISE.match(line))
            if kept:
                os.write(2, kept.encode("utf-8"))


def user_errors():
    """The exception types whose message is the whole story for a user (one line, no trace)."""
    from readers.files import ReaderError
    from yt8m_tf.atomic import WriteError
    from yt8m_tf.presets import PresetError
    from yt8m_tf.registry import ModelSettingsError
    from yt8m_tf.training.distillation import DistillationError
    from yt8m_tf.training.strategy import StrategyError
    from yt8m_tf.training.train_dir import TrainDirError
    from yt8m_tf.training.trainer import TrainingError

    return (ReaderError, PresetError, ModelSettingsError, DistillationError, StrategyError, TrainDirError,
            TrainingError, WriteError)


def debug():
    return os.environ.get("YT8M_DEBUG", "") not in ("", "0")


_TF_NOISE = ("Graph execution error", "Detected at node", "Detected unsupported operations", "File \"", "[[{{node",
             "Traceback (most recent call last)")


def one_line(text):
    """The first informative line of a message: TensorFlow's "Graph execution error:" headers and the Python
    stack of the failing node are skipped, so the line is the cause (e.g. "Collective ops is aborted by: ...")."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(_TF_NOISE):
            return line
    return lines[0] if lines else ""


def describe_tf_error(error):
    """One line for an error raised by TensorFlow outside the input pipeline."""
    import tensorflow as tf

    text = one_line(getattr(error, "message", None) or error) or type(error).__name__
    if isinstance(error, tf.errors.ResourceExhaustedError):
        if "space left" in text.lower() or "disk" in text.lower():
            return f"out of disk space ({text})"
        return (f"out of memory ({text[:300]}); reduce --batch_size (or --max_frames, or the model's width), "
                "or use more devices")
    if isinstance(error, (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError,
                          tf.errors.DeadlineExceededError)):
        return (f"a worker or device was lost ({type(error).__name__}: {text[:300]}); restart all workers: "
                "training resumes from the latest checkpoint in --train_dir")
    return f"{type(error).__name__}: {text[:500]}"


def parse_flags(argv):
    """absl's flag parsing with the same one-line `prog: error:` report as every other error (exit 2)."""
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(" ".join(line.strip() for line in str(e).splitlines() if line.strip())
             + " (--helpshort lists the flags)")


def guard(main, errors=()):
    """`main` wrapped so that user errors (and errors from TensorFlow) end as `prog: error: ...`, exit 2.

    `errors`: more exception types whose message is one line for the user (a program's own error class).
    """

    def guarded(args):
        import tensorflow as tf

        import readers

        try:
            return main(args)
        except Exception as e:  # noqa: BLE001 - sorted below; anything else re-raises with its trace
            if debug():
                raise
            if isinstance(e, user_errors() + tuple(errors)):
                fail(one_line(e) or type(e).__name__)
            if isinstance(e, (tf.errors.DataLossError, tf.errors.InvalidArgumentError)):
                fail(readers.describe_error(e))
            if isinstance(e, tf.errors.OpError):
                fail(describe_tf_error(e))
            if isinstance(e, OSError):
                where = f" '{e.filename}'" if getattr(e, "filename", None) else ""
                fail(f"{e.strerror}{where}" if e.strerror else one_line(e) or type(e).__name__)
            if isinstance(e, MemoryError):
                fail("out of host memory; reduce --batch_size, --num_readers or --shuffle_buffer")
            raise

    return guarded


def run(main, argv=None, errors=()):
    """absl.app.run(main) with quiet logs, one-line flag errors and `guard`'s one-line errors (exit 2)."""
    from absl import app

    def quiet_then_main(args):
        import tensorflow as tf
        from absl import logging

        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("ERROR")
        return guard(main, errors)(args)

    app.run(quiet_then_main, argv=argv, flags_parser=parse_flags)


def fail(message):
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(EXIT_ERROR)


import_tensorflow_quietly()
