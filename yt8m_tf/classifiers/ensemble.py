"""An ensemble of independently trained copies of a classifier h inside one model (paper 3.3)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="yt8m_tf")
class Ensemble(keras.layers.Layer):
    """N copies of a classifier h, each with its own initialisation, noise and dropout; the output is the average
    of their probabilities, as the paper's ensemble is "a simple average of the scores of several models" (3.3).

    The members are trained independently, as separately trained models would be: the trainer averages the loss
    of each member's own predictions (`call(..., return_members=True)`, which `VideoClassifier` exposes as
    `member_predictions` while training), so no member learns to correct another. One training run then costs N
    times one member, but eval.py and inference.py see one model. Members that take labels (`KnnMemory`) get them.

    Args:
        members: the N classifiers (layers or their serialized configs), normally identical configurations.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: (batch, d) float. Output shape: (batch, num_classes) float32 probabilities, or with
    `return_members` (batch, N, num_classes).
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        self.members = [keras.saving.deserialize_keras_object(m) if isinstance(m, dict) else m for m in members]
        if not self.members:
            raise ValueError("Ensemble needs at least one member")
        self.uses_labels = any(getattr(m, "uses_labels", False) for m in self.members)

    def build(self, input_shape):
        for member in self.members:
            if not member.built:  # deserialized members come built
                member.build(input_shape)

    def call(self, x, labels=None, training=None, return_members=False):
        outputs = [ops.cast(member(x, labels=labels, training=training) if getattr(member, "uses_labels", False)
                            else member(x, training=training), "float32") for member in self.members]
        stacked = ops.stack(outputs, axis=1)
        return stacked if return_members else ops.mean(stacked, axis=1)

    def refresh_memory(self):
        """Each member's `refresh_memory` (`KnnMemory`), where it has one."""
        for member in self.members:
            getattr(member, "refresh_memory", lambda: None)()

    def capacity_note(self):
        """The first member's k-NN memory note (`KnnMemory.capacity_note`), if any."""
        notes = [getattr(m, "capacity_note", lambda: None)() for m in self.members]
        return next((note for note in notes if note), None)

    def get_config(self):
        config = super().get_config()
        config["members"] = [keras.saving.serialize_keras_object(m) for m in self.members]
        return config
