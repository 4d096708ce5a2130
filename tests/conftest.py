import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Four logical CPU devices, made before TensorFlow starts: in-process tests run MirroredStrategy over 1, 2 or 4 of
# them (yt8m_tf.training.strategy.make_strategy's cpu_devices); the default strategy still uses /cpu:0 alone.
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 4)

SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "yt8m")


@pytest.fixture(scope="session")
def real_data_dir():
    """../shared/data/yt8m (real YouTube-8M files); tests using it skip when a fresh clone lacks it."""
    path = os.path.normpath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip(f"real YouTube-8M files not found at {path} (they live in ../shared/data/yt8m beside the repo)")
    return path
