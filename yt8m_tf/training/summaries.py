"""TensorBoard scalars written with core TensorFlow (`tf.summary.write`), so the tensorboard package is not a
dependency; TensorBoard reads them as ordinary scalars (plugin "scalars")."""

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()


def write_scalars(writer, step, values):
    """Writes {name: number} at `step` with a `tf.summary.create_file_writer` writer and flushes."""
    with writer.as_default(step=step):
        for name, value in values.items():
            tf.summary.write(name, tf.constant(float(value), tf.float32), metadata=_SCALAR_METADATA)
    writer.flush()
