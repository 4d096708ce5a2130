"""The error of inference.py's library."""


class InferenceError(ValueError):
    """Flags, models or input that cannot be used; the message is one line."""
