"""One shared helper doing the heavy checks every layer needs (the keras-hub `run_layer_test` pattern).

`run_layer_test(cls, init_kwargs, inputs, expected_output_shape)`:
- builds the layer, calls it eagerly and checks the output shape and that it is finite;
- round-trips `get_config()` through JSON, rebuilds the layer, copies the weights and checks equal outputs;
- wraps it in a functional model, saves it to `.keras`, reloads it (safe_mode) and checks equal outputs;
- compiles one training step with `jit_compile=True` (the XLA/TPU-readiness check) and checks that it
  produces finite gradients for every trainable weight.
`inputs` is a tuple of positional arrays (e.g. `(frames, num_frames)`).
"""

import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf


def _call(layer, inputs, training=False, **kwargs):
    return layer(*[tf.convert_to_tensor(x) for x in inputs], training=training, **kwargs)


def run_layer_test(cls, init_kwargs, inputs, expected_output_shape, call_kwargs=None, atol=1e-5,
                   run_xla=True, run_saving=True, expect_gradients=True):
    call_kwargs = call_kwargs or {}
    layer = cls(**init_kwargs)
    out = _call(layer, inputs, **call_kwargs)
    assert tuple(out.shape) == tuple(expected_output_shape), (out.shape, expected_output_shape)
    assert np.all(np.isfinite(np.asarray(out, np.float32))), "non-finite output"

    config = json.loads(json.dumps(layer.get_config()))
    for key, value in init_kwargs.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            assert config[key] == value, f"get_config()[{key!r}] = {config.get(key)!r}, expected {value!r}"
    clone = cls.from_config(config)
    _call(clone, inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(_call(clone, inputs, **call_kwargs), out, atol=atol, rtol=1e-5)

    if run_saving:
        symbolic = [keras.Input(shape=np.shape(x)[1:], dtype=str(np.asarray(x).dtype)) for x in inputs]
        model = keras.Model(symbolic, layer(*symbolic, **call_kwargs))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "layer.keras")
            model.save(path)
            reloaded = keras.saving.load_model(path, safe_mode=True)
        np.testing.assert_allclose(reloaded([tf.convert_to_tensor(x) for x in inputs], training=False),
                                   out, atol=atol, rtol=1e-5)

    if run_xla:
        @tf.function(jit_compile=True)
        def train_step(*args):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.cast(layer(*args, training=True, **call_kwargs), tf.float32)))
            return loss, tape.gradient(loss, layer.trainable_variables)

        loss, grads = train_step(*[tf.convert_to_tensor(x) for x in inputs])
        assert np.isfinite(float(loss))
        if expect_gradients:
            for var, grad in zip(layer.trainable_variables, grads):
                assert grad is not None, f"no gradient for {var.path}"
                assert np.all(np.isfinite(np.asarray(grad))), f"non-finite gradient for {var.path}"
    return layer, out


def assert_padding_invariant(layer, frames, num_frames, extra=7, atol=1e-5, **call_kwargs):
    """Appending padding frames (random garbage past num_frames) never changes the output."""
    frames = np.asarray(frames, np.float32)
    rng = np.random.default_rng(0)
    padded = np.concatenate([frames, rng.normal(size=(frames.shape[0], extra, frames.shape[2])).astype(np.float32)], 1)
    garbage = frames.copy()
    for b, n in enumerate(np.asarray(num_frames)):
        garbage[b, n:] = rng.normal(size=garbage[b, n:].shape)
    base = np.asarray(layer(frames, np.asarray(num_frames, np.int32), training=False, **call_kwargs))
    for variant in (padded, garbage):
        other = np.asarray(layer(variant, np.asarray(num_frames, np.int32), training=False, **call_kwargs))
        np.testing.assert_allclose(other, base, atol=atol, rtol=1e-4)
