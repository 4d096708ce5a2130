"""Training step of LSTMPooling on this CPU: the hoisted input projection (`use_cudnn=False`) vs Keras' LSTM loop.

    python bench/lstm_hoist.py [--repeats 7] [--batch 32 --steps 120 --dim 256 --units 256]

Both models are LSTMPooling(units, use_input_sum=True, use_output_sum=True) + Dense(3862, sigmoid) with the SAME
weights, on the same in-memory batch (num_frames uniform in [T/2, T]). "before": the layer's `keras.layers.LSTM`
with `use_cudnn=False` (Keras' generic loop, I_t U inside the time loop); "after": the layer built with
`use_cudnn=False` (one (B*T, D) x (D, 4d) product, then a loop with s_(t-1) W only). A step is forward + backward +
Adam apply (binary cross-entropy), in a `tf.function` with and without `jit_compile=True`. The four steps run
interleaved, `--repeats` rounds after a warm-up; medians. Writes nothing; the last line is the speed-up
(before / after) with and without XLA.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

CLASSES = 3862


def make_model(hoisted, units, dim):
    import keras

    from yt8m_tf.pooling import LSTMPooling

    pooling = LSTMPooling(units=units, use_input_sum=True, use_output_sum=True,
                          use_cudnn=False if hoisted else "auto")
    if not hoisted:
        for rnn in pooling.rnns:
            rnn.use_cudnn = False  # Keras' generic loop even where a GPU is visible
    frames, num_frames = keras.Input((None, dim)), keras.Input((), dtype="int32")
    head = keras.layers.Dense(CLASSES, activation="sigmoid")
    return keras.Model([frames, num_frames], head(pooling(frames, num_frames)))


def make_step(model, jit_compile):
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def step(frames, num_frames, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.binary_crossentropy(labels, model([frames, num_frames],
                                                                                 training=True)))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--units", type=int, default=256)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    frames = rng.normal(size=(args.batch, args.steps, args.dim)).astype(np.float32)
    num_frames = rng.integers(args.steps // 2, args.steps + 1, args.batch).astype(np.int32)
    frames[np.arange(args.steps)[None, :] >= num_frames[:, None]] = 0.0
    labels = np.zeros((args.batch, CLASSES), np.float32)
    for row in range(args.batch):
        labels[row, rng.choice(CLASSES, 3, replace=False)] = 1.0
    batch = [tf.constant(frames), tf.constant(num_frames), tf.constant(labels)]

    keras.utils.set_random_seed(0)
    reference = make_model(False, args.units, args.dim)
    candidates, losses = {}, {}
    for jit_compile in (True, False):
        for hoisted in (False, True):
            model = make_model(hoisted, args.units, args.dim)
            model.set_weights(reference.get_weights())
            step = make_step(model, jit_compile)
            name = f"{'after' if hoisted else 'before'}{' XLA' if jit_compile else ''}"
            losses[name] = float(step(*batch))  # compiles; the first step from the shared weights
            candidates[name] = lambda step=step: step(*batch).numpy()
    print("first-step losses (same weights, must agree): "
          + ", ".join(f"{name} {loss:.6f}" for name, loss in losses.items()), flush=True)
    assert max(losses.values()) - min(losses.values()) < 1e-4, losses

    times = common.interleave(candidates, args.repeats, warmup=1)
    print(f"Machine: {common.machine()}; load average {common.load_average():.2f}")
    print(f"B={args.batch} T={args.steps} D={args.dim} d={args.units}, {args.repeats} interleaved rounds, medians:")
    for name, seconds in times.items():
        print(f"  {name:11s} {common.median(seconds) * 1e3:7.0f} ms/step  "
              f"({', '.join(f'{s * 1e3:.0f}' for s in seconds)})")
    ratio = {xla: common.median(times["before" + xla]) / common.median(times["after" + xla]) for xla in ("", " XLA")}
    print(f"lstm_hoist: speed-up (before / after) with XLA {ratio[' XLA']:.2f}x, without XLA {ratio['']:.2f}x")


if __name__ == "__main__":
    main()
