"""The official 8-bit quantization of YouTube-8M features.

Frame features are stored as one uint8 per dimension; the official readers map a byte x back to
``x * (max - min) / 255 + (max - min) / 512 + min`` with max = 2 and min = -2, so values lie in
[-1.9921875, 2.0078125]. ``dequantize`` works on numpy arrays, tf tensors and Keras tensors alike, so it can be
the model's first op when frames travel to the accelerator as uint8.
"""

import numpy as np

MAX_QUANTIZED_VALUE = 2.0
MIN_QUANTIZED_VALUE = -2.0
_SCALAR = (MAX_QUANTIZED_VALUE - MIN_QUANTIZED_VALUE) / 255.0
_BIAS = (MAX_QUANTIZED_VALUE - MIN_QUANTIZED_VALUE) / 512.0 + MIN_QUANTIZED_VALUE


def dequantize(x, ops=None):
    """uint8 codes -> float32 values, exactly as the official reader computes them.

    ``ops`` is the array module to use (``keras.ops``, ``tf`` or None for numpy).
    """
    if ops is None:
        return np.asarray(x, np.float32) * np.float32(_SCALAR) + np.float32(_BIAS)
    return ops.cast(x, "float32") * _SCALAR + _BIAS


def quantize(values):
    """float values -> the uint8 codes whose dequantized value is nearest (the inverse used by the writer)."""
    codes = np.round((np.asarray(values, np.float64) - _BIAS) / _SCALAR)
    return np.clip(codes, 0, 255).astype(np.uint8)
