"""The assembled model: video pooling g -> classification h -> label processing C (paper Fig. 1, section 2)."""

import keras
from keras import ops

from yt8m_tf.quantization import dequantize


@keras.saving.register_keras_serializable(package="yt8m_tf")
class VideoClassifier(keras.Model):
    """One model class for every registry name: g, h and C are plain Keras layers chosen by `yt8m_tf.registry`.

    Args:
      classifier: h, (B, d) -> (B, num_classes) probabilities; or a frames-taking head (`takes_frames = True`,
        the paper's Many-to-Many, 2.3.1), which then replaces g.
      pooling: g, (B, T, D) frames + (B,) num_frames -> (B, d); None for video-level input (B, D).
      label_processing: C, (B, num_classes) -> (B, num_classes); None when not used.

    Input: the reader's batch dict: `video_matrix` (float32, or uint8 codes which are dequantized here, as the first
    op on the accelerator), `num_frames`, and `labels` (used only by poolings with `uses_labels`, at training time).
    Output: dict with `predictions` (B, num_classes) float32 probabilities and `embedding`, the input of h (O_g),
    which the center loss (2.5.1) pulls toward class centers.
    """

    def __init__(self, classifier, pooling=None, label_processing=None, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.pooling = pooling
        self.label_processing = label_processing

    def call(self, inputs, training=None):
        x = inputs["video_matrix"]
        if x.dtype == "uint8":
            x = dequantize(x, ops)
        if getattr(self.classifier, "takes_frames", False):
            embedding = x
            predictions = self.classifier(x, inputs["num_frames"], training=training)
        else:
            if self.pooling is None:
                embedding = x
            elif getattr(self.pooling, "uses_labels", False):
                embedding = self.pooling(x, inputs["num_frames"], labels=inputs.get("labels"), training=training)
            else:
                embedding = self.pooling(x, inputs["num_frames"], training=training)
            predictions = self.classifier(embedding, training=training)
        if self.label_processing is not None:
            predictions = self.label_processing(predictions)
        return {"predictions": ops.cast(predictions, "float32"), "embedding": embedding}

    def get_config(self):
        config = super().get_config()
        config.update({
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "pooling": keras.saving.serialize_keras_object(self.pooling) if self.pooling is not None else None,
            "label_processing": keras.saving.serialize_keras_object(self.label_processing)
            if self.label_processing is not None else None,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("classifier", "pooling", "label_processing"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
