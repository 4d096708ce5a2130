"""What the command-line entry points share: quiet TensorFlow logs and one-line errors instead of traces."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def user_errors():
    """The exception types whose message is the whole story for a user (one line, no trace)."""
    from readers.files import ReaderError
    from yt8m_tf.presets import PresetError
    from yt8m_tf.registry import ModelSettingsError
    from yt8m_tf.training.train_dir import TrainDirError
    from yt8m_tf.training.trainer import TrainingError

    return ReaderError, PresetError, ModelSettingsError, TrainDirError, TrainingError


def run(main, argv=None):
    """absl.app.run(main) that turns user errors (and data errors from TensorFlow) into `prog: error: ...`, exit 2."""
    from absl import app

    def guarded(args):
        import tensorflow as tf
        from absl import logging

        import readers

        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("ERROR")

        try:
            return main(args)
        except user_errors() as e:
            fail(str(e))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            fail(readers.describe_error(e))

    app.run(guarded, argv=argv)


def fail(message):
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(2)
