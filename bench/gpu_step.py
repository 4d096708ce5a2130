"""GPU training step of the paper's final model at full width, with the project's Keras layers on the JAX backend.

The GPU machine lent to this project has no TensorFlow (and TensorFlow's wheels are too large to carry there), but
has JAX with CUDA. Keras 3 runs the project's own layers on JAX unchanged, so this builds

    yt8m_tf.model.VideoClassifier(MoE(3862, num_mixtures=2),
                                  pooling=LSTMPooling(1152, use_input_sum=True, use_output_sum=True,
                                                      l2_normalize_sums=True))

(LSTM-M-O + MoE-2, the paper's final single model; frames enter as uint8 and the model dequantizes them) and times a
jitted training step written with `model.stateless_call` + `jax.value_and_grad` + Keras Adam's `stateless_apply`
(clipnorm 1.0 as the trainer's default), loss = pseudo-Huber cross entropy (delta 0.5,
yt8m_tf.losses.pseudo_huber_cross_entropy) + the L2 penalties of the MoE kernels. None of these modules imports
TensorFlow (tests/test_tensorflow_free_layers.py). It does NOT measure the TF trainer (yt8m_tf/training/trainer.py): it measures the same
layers compiled by XLA through JAX.

    # on the GPU machine (KERAS_BACKEND=jax is set by the script), results into $OUT/gpu_step.json:
    python bench/gpu_step.py --out $OUT/gpu_step.json
    # here, afterwards: write the BENCHMARKS.md section from that file
    python bench/gpu_step.py --record /path/to/gpu_step.json
    # a tiny smoke test of the script on any machine with JAX:
    python bench/gpu_step.py --smoke

The last line printed is the bf16 (else fp32) step's achieved FLOP/s as a fraction of the matmul peak measured in
the same run.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import flops as flops_lib  # noqa: E402

TRAIN_SET_2018 = 3_900_000  # videos in the 2018 training set (train + most of validate, as the paper used)
EPOCHS = 5


def matmul_peak(jax, jnp, dtype, n=8192, reps=20):
    key = jax.random.PRNGKey(0)
    a = jax.random.normal(key, (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)

    product = jax.jit(lambda a, b: a @ b)
    product(a, b).block_until_ready()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            out = product(a, b)
        out.block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 * reps / common.median(times)


def hoisted_lstm(inputs, initial_state_h, initial_state_c, mask, kernel, recurrent_kernel, bias, activation,
                 recurrent_activation, return_sequences=False, go_backwards=False, unroll=False):
    """A JAX implementation of Keras' optional `backend.lstm` hook (the TF backend plugs cuDNN in there; the JAX
    backend has none and falls back to the generic per-step cell, which multiplies x_t by the input kernel INSIDE
    the time loop). This one does the input projection of all T steps as one (B*T, D) x (D, 4U) product before a
    lax.scan that holds only the recurrent product: the same math (Keras gate order i, f, c, o; masked steps keep
    the state and output zeros), fewer and larger kernels. Benchmark-only monkeypatch (`--variants hoisted`)."""
    import jax
    import jax.numpy as jnp
    import keras
    from keras import ops

    if go_backwards or unroll or activation is not keras.activations.tanh \
            or recurrent_activation is not keras.activations.sigmoid:
        raise NotImplementedError
    dtype = inputs.dtype
    kernel = ops.convert_to_tensor(kernel).astype(dtype)
    recurrent_kernel = ops.convert_to_tensor(recurrent_kernel).astype(dtype)
    projected = jnp.einsum("btd,dk->tbk", inputs, kernel)
    if bias is not None:
        projected = projected + ops.convert_to_tensor(bias).astype(dtype)
    if mask is None:
        mask = jnp.ones(inputs.shape[:2], bool)
    mask = jnp.swapaxes(jnp.asarray(mask, bool), 0, 1)[:, :, None]

    def step(carry, xs):
        h, c = carry
        z, m = xs
        z = z + h @ recurrent_kernel
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
        h_new, c_new = jnp.where(m, h_new, h), jnp.where(m, c_new, c)
        return (h_new, c_new), jnp.where(m, h_new, jnp.zeros_like(h_new))

    (h, c), outputs = jax.lax.scan(step, (initial_state_h.astype(dtype), initial_state_c.astype(dtype)),
                                   (projected, mask))
    return h, jnp.swapaxes(outputs, 0, 1), [h, c]


class _Patched:
    """Installs `hoisted_lstm` as Keras' backend LSTM hook for the duration of a `with` block."""

    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        from keras.src.layers.rnn import lstm as lstm_module
        self.module, self.saved = lstm_module.backend, getattr(lstm_module.backend, "lstm", None)
        if self.enabled:
            self.module.lstm = hoisted_lstm

    def __exit__(self, *exc):
        self.module.lstm = self.saved


def time_training_step(policy, batch, steps, dim, units, classes, mixtures, timed_steps, rounds, variant="keras"):
    with _Patched(variant == "hoisted"):
        result = _time_training_step(policy, batch, steps, dim, units, classes, mixtures, timed_steps, rounds)
    result["variant"] = variant
    return result


def check_hoisted(batch=3, steps=7, dim=10, units=6):
    """The hoisted LSTM gives the generic Keras LSTM's outputs (same weights, masked video lengths incl. 0)."""
    import keras
    import numpy as np

    from yt8m_tf.classifiers import MoE
    from yt8m_tf.model import VideoClassifier
    from yt8m_tf.pooling import LSTMPooling

    model = VideoClassifier(MoE(5, num_mixtures=2), pooling=LSTMPooling(
        units=units, use_input_sum=True, use_output_sum=True, l2_normalize_sums=True))
    inputs = {"video_matrix": np.random.default_rng(0).integers(0, 256, (batch, steps, dim)).astype(np.uint8),
              "num_frames": np.array([steps, 3, 0][:batch], np.int32)}
    plain = model(inputs)
    with _Patched(True):
        hoisted = model(inputs)
    for key in ("embedding", "predictions"):
        np.testing.assert_allclose(np.asarray(plain[key]), np.asarray(hoisted[key]), rtol=2e-5, atol=2e-6)
    return float(np.max(np.abs(np.asarray(plain["embedding"]) - np.asarray(hoisted["embedding"]))))


def _time_training_step(policy, batch, steps, dim, units, classes, mixtures, timed_steps, rounds):
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np
    from keras import ops

    from yt8m_tf import losses as losses_lib
    from yt8m_tf.classifiers import MoE
    from yt8m_tf.model import VideoClassifier
    from yt8m_tf.pooling import LSTMPooling

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = VideoClassifier(MoE(classes, num_mixtures=mixtures),
                            pooling=LSTMPooling(units=units, use_input_sum=True, use_output_sum=True,
                                                l2_normalize_sums=True))
    model({"video_matrix": np.zeros((2, steps, dim), np.uint8), "num_frames": np.ones((2,), np.int32)})
    optimizer = keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)
    optimizer.build(model.trainable_variables)

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 256, (batch, steps, dim), dtype=np.uint8))
    n = jnp.asarray(rng.integers(min(120, steps), steps + 1, (batch,)).astype(np.int32))
    y = np.zeros((batch, classes), np.float32)
    for row in range(batch):
        y[row, rng.choice(classes, 3, replace=False)] = 1.0
    y = jnp.asarray(y)

    def loss_fn(trainable, non_trainable, x, n, y):
        outputs, non_trainable, losses = model.stateless_call(
            trainable, non_trainable, {"video_matrix": x, "num_frames": n}, training=True, return_losses=True)
        loss = ops.mean(losses_lib.pseudo_huber_cross_entropy(y, outputs["predictions"]))
        for extra in losses:
            loss = loss + ops.cast(extra, "float32")
        return loss, non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(trainable, non_trainable, optimizer_vars, x, n, y):
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, n, y)
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return trainable, non_trainable, optimizer_vars, loss

    step = jax.jit(step, donate_argnums=(0, 1, 2))
    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables])
    started = time.perf_counter()
    *state, loss = step(*state, x, n, y)
    loss.block_until_ready()
    compile_s = time.perf_counter() - started
    *state, loss = step(*state, x, n, y)
    loss.block_until_ready()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(timed_steps):
            *state, loss = step(*state, x, n, y)
        loss.block_until_ready()
        times.append((time.perf_counter() - started) / timed_steps)
    seconds = common.median(times)
    flops = flops_lib.TRAIN_FACTOR * flops_lib.lstm_m_o_moe(dim, units, steps, classes, mixtures) * batch
    keras.mixed_precision.set_global_policy("float32")
    return {"policy": policy, "batch": batch, "steps": steps, "dim": dim, "units": units, "classes": classes,
            "step_s": seconds, "step_s_all": times, "compile_s": compile_s, "examples_per_s": batch / seconds,
            "flop_per_step": flops, "flop_s": flops / seconds, "final_loss": float(loss),
            "params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
            "epochs_hours": EPOCHS * TRAIN_SET_2018 / (batch / seconds) / 3600}


def run(args):
    import jax
    import jax.numpy as jnp
    import keras

    started = time.perf_counter()
    device = jax.devices()[0]
    result = {"machine": common.machine(f"JAX {jax.__version__} on {device.device_kind} ({device.platform})"),
              "device": device.device_kind, "jax": jax.__version__, "keras": keras.__version__,
              "matmul_precision": str(jax.config.jax_default_matmul_precision), "runs": []}
    n = 1024 if args.smoke else 8192
    result["peak_fp32"] = matmul_peak(jax, jnp, jnp.float32, n=n, reps=3 if args.smoke else 20)
    result["peak_bf16"] = matmul_peak(jax, jnp, jnp.bfloat16, n=n, reps=3 if args.smoke else 20)
    print(f"matmul peak: fp32 (default precision) {result['peak_fp32'] / 1e12:.1f} TFLOP/s, "
          f"bf16 {result['peak_bf16'] / 1e12:.1f} TFLOP/s", flush=True)
    if args.smoke:
        shape = dict(batch=4, steps=12, dim=48, units=16, classes=50, mixtures=2, timed_steps=2, rounds=2)
    else:
        shape = dict(batch=128, steps=300, dim=1152, units=1152, classes=3862, mixtures=2, timed_steps=10, rounds=5)
    result["hoisted_max_abs_diff"] = check_hoisted()
    print(f"hoisted LSTM == Keras LSTM (max abs diff {result['hoisted_max_abs_diff']:.1e})", flush=True)
    configs = [("float32", shape["batch"], "keras"), ("mixed_bfloat16", shape["batch"], "keras")]
    configs += [(p, shape["batch"], v) for v in args.variants for p in ("mixed_bfloat16", "float32")]
    configs += [("mixed_bfloat16", b, v) for b in args.extra_batches for v in ["keras"] + args.variants]
    for policy, batch, variant in configs:
        if time.perf_counter() - started > args.budget_s:
            print(f"skipped {policy} batch {batch}: over the time budget", flush=True)
            continue
        r = time_training_step(policy, **{**shape, "batch": batch}, variant=variant)
        peak = result["peak_bf16"] if "bfloat16" in policy else result["peak_fp32"]
        r["of_peak"] = r["flop_s"] / peak
        result["runs"].append(r)
        print(f"{policy} {variant} batch {batch}: {r['step_s'] * 1e3:.1f} ms/step, "
              f"{r['examples_per_s']:.0f} examples/s, "
              f"{r['flop_s'] / 1e12:.1f} TFLOP/s = {r['of_peak']:.1%} of peak, compile {r['compile_s']:.0f}s, "
              f"5 epochs of 3.9M videos: {r['epochs_hours']:.1f} h", flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(result, f, indent=1)
    return result


def markdown(result):
    rows = []
    for r in result["runs"]:
        rows.append([r["policy"], r.get("variant", "keras"), r["batch"], f"{r['step_s'] * 1e3:.1f}",
                     f"{r['examples_per_s']:,.0f}",
                     f"{r['flop_s'] / 1e12:.1f}", f"{r['of_peak']:.1%}", f"{r['epochs_hours']:.1f} h",
                     f"{r['compile_s']:.0f} s"])
    r0 = result["runs"][0]
    per_example = r0["flop_per_step"] / r0["batch"]
    return f"""## GPU: training step of the paper's final model (LSTM-M-O 1152 + MoE-2) on the JAX backend

**What this is:** the project's own Keras layers (`yt8m_tf.pooling.LSTMPooling(units=1152, use_input_sum=True,
use_output_sum=True, l2_normalize_sums=True)` + `yt8m_tf.classifiers.MoE(3862, num_mixtures=2)` in
`yt8m_tf.model.VideoClassifier`) run by **Keras 3 on the JAX backend, compiled by XLA**, because the lent GPU
machine's image has no TensorFlow (its wheels exceed what can be carried there). The step is `model.stateless_call`
+ `jax.value_and_grad` + Keras Adam `stateless_apply` (clipnorm 1.0), pseudo-Huber loss (delta 0.5) + L2, jitted,
on uint8 frames already on the device (B x T=300 x D=1152, 120-300 valid frames). **The TF trainer itself is not
measured here.**

Machine: {result['machine']}. JAX default matmul precision: `{result['matmul_precision']}` (None = XLA's default,
which lets fp32 products use TF32 tensor cores on Hopper).

Matmul peak measured in the same run (8192^3 products in a jitted loop): fp32 {result['peak_fp32'] / 1e12:.1f}
TFLOP/s, bf16 {result['peak_bf16'] / 1e12:.1f} TFLOP/s. FLOPs per training example (see the CPU training section for
the counting): 3 x (LSTM 300 x (2*1152*4608 + 2*1152*4608) + MoE 2*4608*3862*3 + 2*4608*3862*2) =
{per_example / 1e9:.2f} GFLOP (all 300 steps run; padded steps are computed and masked).

{common.table(["policy", "LSTM loop", "batch", "ms/step", "examples/s", "TFLOP/s", "of matmul peak",
               "5 epochs x 3.9M videos",
               "compile"], rows)}
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="")
    parser.add_argument("--record", default="", help="write BENCHMARKS.md from a JSON result of an earlier run")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--extra_batches", default="512", help="more mixed_bfloat16 batch sizes (comma-separated)")
    parser.add_argument("--variants", default="hoisted", help="LSTM variants besides Keras' own: 'hoisted' or ''")
    parser.add_argument("--budget_s", type=float, default=420.0)
    args = parser.parse_args(argv)
    args.extra_batches = [int(b) for b in args.extra_batches.split(",") if b.strip()]
    args.variants = [v for v in args.variants.split(",") if v.strip()]
    if args.record:
        with open(args.record) as f:
            result = json.load(f)
        common.record("gpu_step", markdown(result))
    else:
        result = run(args)
        print(markdown(result))
    best = [r for r in result["runs"] if "bfloat16" in r["policy"] and r["batch"] == 128
            and r.get("variant", "keras") == "keras"] or result["runs"]
    print(f"gpu_step: {best[0]['policy']} batch {best[0]['batch']}: {best[0]['of_peak']:.3f} of the matmul peak "
          f"({best[0]['examples_per_s']:.0f} examples/s)")


if __name__ == "__main__":
    main()
