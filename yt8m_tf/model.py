"""The assembled model: video pooling g -> classification h -> label processing C (paper Fig. 1, section 2)."""

import keras
from keras import ops

from yt8m_tf.classifiers.ensemble import Ensemble
from yt8m_tf.quantization import dequantize

INPUT_NORMALIZATIONS = ("none", "l2", "l2_scaled")


@keras.saving.register_keras_serializable(package="yt8m_tf")
class FeatureNormalization(keras.layers.Layer):
    """Per-feature L2 normalisation of the input, the model's first op after dequantization (so it is saved with
    the model and eval / inference / exports apply it too).

    The last axis is the concatenation of the features (`--feature_names`, widths `feature_sizes`, e.g.
    mean_rgb 1024 + mean_audio 128); each feature block v is normalised on its own:

        "l2":         v / ||v||                       (seilna/youtube-8m train.py normalised each feature so)
        "l2_scaled":  v / ||v|| * sqrt(len(v))        (unit mean square per dimension, as the raw features have)
        "none":       unchanged

    Frame-level input (B, T, D) is normalised frame by frame. A zero block stays zero (||v|| is floored at 1e-6).

    Args:
        feature_sizes: sequence of ints, the widths of the concatenated features (their sum is D).
        method: one of INPUT_NORMALIZATIONS. Default "l2".
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: (..., D) float. Output shape: the same.
    """

    def __init__(self, feature_sizes, method="l2", **kwargs):
        super().__init__(**kwargs)
        if method not in INPUT_NORMALIZATIONS:
            raise ValueError(f"unknown input normalization {method!r}; valid: {', '.join(INPUT_NORMALIZATIONS)}")
        self.feature_sizes = [int(size) for size in feature_sizes]
        self.method = method

    def call(self, x):
        if self.method == "none":
            return x
        blocks, start = [], 0
        for size in self.feature_sizes:
            block = x[..., start:start + size]
            start += size
            norm = ops.sqrt(ops.sum(ops.square(ops.cast(block, "float32")), axis=-1, keepdims=True))
            scale = float(size) ** 0.5 if self.method == "l2_scaled" else 1.0
            blocks.append(ops.cast(ops.cast(block, "float32") * (scale / ops.maximum(norm, 1e-6)), x.dtype))
        return ops.concatenate(blocks, axis=-1) if len(blocks) > 1 else blocks[0]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"feature_sizes": self.feature_sizes, "method": self.method})
        return config


@keras.saving.register_keras_serializable(package="yt8m_tf")
class VideoClassifier(keras.Model):
    """One model class for every registry name: g, h and C are plain Keras layers chosen by `yt8m_tf.registry`.

    Args:
      classifier: h, (B, d) -> (B, num_classes) probabilities; or a frames-taking head (`takes_frames = True`,
        the paper's Many-to-Many, 2.3.1), which then replaces g.
      pooling: g, (B, T, D) frames + (B,) num_frames -> (B, d); None for video-level input (B, D).
      label_processing: C, (B, num_classes) -> (B, num_classes); None when not used.
      input_normalization: a layer applied to the (dequantized) input first (`FeatureNormalization`); None: none.

    Input: the reader's batch dict: `video_matrix` (float32, or uint8 codes which are dequantized here, as the first
    op on the accelerator), `num_frames`, and `labels` (used only by poolings with `uses_labels`, at training time).
    Output: dict with `predictions` (B, num_classes) float32 probabilities and `embedding`, the input of h (O_g),
    which the center loss (2.5.1) pulls toward class centers. Classifiers with `uses_labels = True` (`KnnMemory`)
    get `labels=` at training time, like poolings with `uses_labels`. With an `Ensemble` h, training outputs also
    hold `member_predictions` (B, N, num_classes), for a loss per member. A frames-taking head with
    `returns_members = True` (`NeXtVLADMixture`) returns its own training outputs (`predictions`,
    `member_predictions`, `member_logits`, `mixture_logits`); label processing is not applied to them (the registry
    refuses C with such a head).
    """

    def __init__(self, classifier, pooling=None, label_processing=None, input_normalization=None, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.pooling = pooling
        self.label_processing = label_processing
        self.input_normalization = input_normalization

    def call(self, inputs, training=None):
        x = inputs["video_matrix"]
        if x.dtype == "uint8":
            x = dequantize(x, ops)
        if self.input_normalization is not None:
            x = self.input_normalization(x)
        if getattr(self.classifier, "takes_frames", False):
            embedding = x
            if training and getattr(self.classifier, "returns_members", False):
                outputs = self.classifier(x, inputs["num_frames"], training=training, return_members=True)
                return {**{k: ops.cast(v, "float32") for k, v in outputs.items()}, "embedding": embedding}
            predictions = self.classifier(x, inputs["num_frames"], training=training)
        else:
            if self.pooling is None:
                embedding = x
            elif getattr(self.pooling, "uses_labels", False):
                embedding = self.pooling(x, inputs["num_frames"], labels=inputs.get("labels"), training=training)
            else:
                embedding = self.pooling(x, inputs["num_frames"], training=training)
            kwargs = {"training": training}
            if getattr(self.classifier, "uses_labels", False):
                kwargs["labels"] = inputs.get("labels") if training else None
            if training and isinstance(self.classifier, Ensemble):
                members = self.classifier(embedding, return_members=True, **kwargs)
                return self._member_outputs(members, embedding)
            predictions = self.classifier(embedding, **kwargs)
        if self.label_processing is not None:
            predictions = self.label_processing(predictions)
        return {"predictions": ops.cast(predictions, "float32"), "embedding": embedding}

    def _member_outputs(self, members, embedding):
        """Training outputs of an `Ensemble` h: also `member_predictions` (B, N, num_classes), C applied to each."""
        if self.label_processing is not None:
            shape = ops.shape(members)
            members = ops.reshape(self.label_processing(ops.reshape(members, (-1, shape[-1]))), shape)
        return {"predictions": ops.mean(members, axis=1), "member_predictions": members, "embedding": embedding}

    def get_config(self):
        config = super().get_config()
        config.update({
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "pooling": keras.saving.serialize_keras_object(self.pooling) if self.pooling is not None else None,
            "label_processing": keras.saving.serialize_keras_object(self.label_processing)
            if self.label_processing is not None else None,
            "input_normalization": keras.saving.serialize_keras_object(self.input_normalization)
            if self.input_normalization is not None else None,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("classifier", "pooling", "label_processing", "input_normalization"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
