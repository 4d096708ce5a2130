"""Fast CPU screening of video-level training ideas on the real 2018 shards (docs/QUALITY.md, "Screening on CPU").

The data is read once into memory and the `video-best` member (the package's MLP layer, optimizer and schedule) is
trained by a plain TensorFlow loop, with the k-NN vote computed from the final hidden features of all training
videos (the CLI's memory holds the same). It reproduces the CLI's single-member GAP (0.7337) in about half the
time, which makes it a screen for ideas that the CLI then confirms:

    python bench/quality_screen_tf.py                          # the video-best member (GAP of the mix on the last line)
    python bench/quality_screen_tf.py --members=2              # two members averaged (= --ensemble_members=2)
    python bench/quality_screen_tf.py --focal_gamma_neg=0 --lr=2e-3   # the member before the focusing and lr 3e-3
    python bench/quality_screen_tf.py --mode=target --a=0.3    # targets smoothed by leave-one-out k-NN votes
    python bench/quality_screen_tf.py --mode=mix --a=0.3       # loss on the mix with leave-one-out votes
    python bench/quality_screen_tf.py --sam=0.05               # sharpness-aware minimisation
    python bench/quality_screen_tf.py --rdrop=1.0              # R-Drop consistency between two noisy passes
    python bench/quality_screen_tf.py --dump=/tmp/m.npz        # also save both sets' hidden features and predictions

With --dump the votes of the memory (docs/QUALITY.md, the output-space vote) can be computed offline from the saved
features (h, he), predictions (p, pe) and labels (y, ye) of the training and evaluation videos.
"""
import argparse
import glob
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from yt8m_tf import losses, metrics  # noqa: E402
from yt8m_tf.classifiers.mlp import MLP  # noqa: E402
from yt8m_tf.training import optimization  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument('--train', default='validate00[0-7][0-9]')
ap.add_argument('--eval', default='validate00[89][0-9]')
ap.add_argument('--mode', default='none', choices=['none', 'target', 'mix'])
ap.add_argument('--a', type=float, default=0.3)
ap.add_argument('--refresh', default='3,6,9')
ap.add_argument('--epochs', type=int, default=10)
ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--hidden', type=int, default=2048)
ap.add_argument('--out', default='', help='save the eval predictions (p, v) to this .npz')
ap.add_argument('--dump', default='', help='save hidden features and predictions of both sets (float16) to this .npz')
ap.add_argument('--sam', type=float, default=0.0)
ap.add_argument('--rdrop', type=float, default=0.0)
ap.add_argument('--members', type=int, default=1)
ap.add_argument('--focal_gamma_neg', type=float, default=1.0)
ap.add_argument('--lr', type=float, default=3e-3)
ap.add_argument('--decay_examples', type=int, default=25000)
args = ap.parse_args()
keras.utils.set_random_seed(args.seed)
D = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..', 'shared', 'data', 'yt8m', 'v2-video', '')
C = 3862

def load(pat):
    xs, ys = [], []
    for f in sorted(glob.glob(D + pat + '.tfrecord')):
        for r in tf.data.TFRecordDataset(f):
            ex = tf.train.Example.FromString(r.numpy()).features.feature
            rgb = np.array(ex['mean_rgb'].float_list.value, np.float32)
            aud = np.array(ex['mean_audio'].float_list.value, np.float32)
            rgb *= 32.0 / max(np.linalg.norm(rgb), 1e-6); aud *= 128 ** 0.5 / max(np.linalg.norm(aud), 1e-6)
            xs.append(np.concatenate([rgb, aud])); y = np.zeros(C, np.float32); y[list(ex['labels'].int64_list.value)] = 1; ys.append(y)
    return np.stack(xs), np.stack(ys)

t0 = time.time()
X, Y = load(args.train); XE, YE = load(args.eval)
print('loaded', X.shape, XE.shape, round(time.time() - t0, 1), flush=True)
N = len(X); B = 512
mlps = [MLP(C, [args.hidden], layer_norm=True, activation='gelu', dropout=0.6, input_noise=0.6, use_output_bias=True,
          output_bias_initializer_value=-6.907755) for _ in range(args.members)]
for m in mlps: m.build((None, 1152))
class Ens:
    trainable_variables = [v for m in mlps for v in m.trainable_variables]
    losses = property(lambda self: [l for m in mlps for l in m.losses])
    def __call__(self, x, training=False):
        return [m(x, training=training) for m in mlps]
    def features(self, x, training=False):
        return tf.concat([m.features(x, training=training) for m in mlps], -1)
    def classify(self, h):
        hs = tf.split(h, len(mlps), -1)
        return tf.add_n([m.classify(hh) for m, hh in zip(mlps, hs)]) / len(mlps)
mlp = Ens()
sched = optimization.learning_rate_schedule(args.lr, 0.75, args.decay_examples, B, 50)
opt = optimization.make_optimizer('adamw', sched, 1.0, 1.0)
opt.build(mlp.trainable_variables)
Xt, Yt = tf.constant(X), tf.constant(Y)
V = tf.Variable(tf.zeros((N, C)), trainable=False)
have_v = tf.Variable(0.0, trainable=False)

def ce(t, p):
    return tf.reduce_mean(losses.cross_entropy(t, p, focal_gamma_neg=args.focal_gamma_neg))

@tf.function
def step(idx):
    x, y = tf.gather(Xt, idx), tf.gather(Yt, idx)
    v = tf.gather(V, idx)
    with tf.GradientTape() as tape:
        p = mlp(x, training=True)
        if args.mode == 'target':
            t = (1 - args.a * have_v) * y + args.a * have_v * v
            loss = ce(t, p)
        elif args.mode == 'mix':
            w = args.a * have_v
            loss = ce(y, (1 - w) * p + w * v)
        else:
            loss = tf.add_n([ce(y, pp) for pp in p])
        total = loss + 1e-8 * tf.add_n(mlp.losses) if mlp.losses else loss
    g = tape.gradient(total, mlp.trainable_variables)
    if args.sam:
        scale = args.sam / (tf.linalg.global_norm(g) + 1e-12)
        eps = [gg * scale for gg in g]
        for v, e in zip(mlp.trainable_variables, eps): v.assign_add(e)
        with tf.GradientTape() as tape:
            p = mlp(x, training=True)
            loss = tf.add_n([ce(y, pp) for pp in p])
            total = loss + 1e-8 * tf.add_n(mlp.losses)
        g = tape.gradient(total, mlp.trainable_variables)
        for v, e in zip(mlp.trainable_variables, eps): v.assign_sub(e)
    opt.apply_gradients(zip(g, mlp.trainable_variables))
    return loss

def bkl(p, q):
    p = tf.clip_by_value(p, 1e-6, 1 - 1e-6); q = tf.clip_by_value(q, 1e-6, 1 - 1e-6)
    return tf.reduce_mean(tf.reduce_sum(p * tf.math.log(p / q) + (1 - p) * tf.math.log((1 - p) / (1 - q)), -1))

@tf.function
def rdrop_step(idx):
    x, y = tf.gather(Xt, idx), tf.gather(Yt, idx)
    with tf.GradientTape() as tape:
        p1 = mlp(x, training=True)[0]; p2 = mlp(x, training=True)[0]
        loss = 0.5 * (ce(y, p1) + ce(y, p2))
        total = loss + 0.5 * args.rdrop * (bkl(p1, p2) + bkl(p2, p1)) + 1e-8 * tf.add_n(mlp.losses)
    g = tape.gradient(total, mlp.trainable_variables)
    opt.apply_gradients(zip(g, mlp.trainable_variables))
    return loss
if args.rdrop: step = rdrop_step

@tf.function
def feats(x):
    hs = [m.features(x, training=False) for m in mlps]
    p = tf.add_n([m.classify(h) for m, h in zip(mlps, hs)]) / len(mlps)
    h = tf.concat([h / tf.maximum(tf.norm(h, axis=-1, keepdims=True), 1e-12) for h in hs], -1) / len(mlps) ** 0.5
    return h, p

def hidden(Xa):
    H, P = [], []
    for i in range(0, len(Xa), 2048):
        h, p = feats(Xa[i:i + 2048]); H.append(h); P.append(p)
    return tf.concat(H, 0), tf.concat(P, 0)

@tf.function
def vote_chunk(q, keys, labels, self_start, temperature):
    sims = tf.matmul(q, keys, transpose_b=True)
    if self_start >= 0:
        n = tf.shape(q)[0]
        sims = tf.tensor_scatter_nd_update(sims, tf.stack([tf.range(n), self_start + tf.range(n)], 1), tf.fill([n], -1e9))
    top, idx = tf.math.top_k(sims, 50)
    w = tf.exp((top - top[:, :1]) / temperature)
    w = w / tf.reduce_sum(w, -1, keepdims=True)
    return tf.einsum('bk,bkc->bc', w, tf.gather(labels, idx))

def votes(Q, keys, labels, loo, temperature=0.05):
    out = []
    for i in range(0, len(Q), 256):
        out.append(vote_chunk(Q[i:i + 256], keys, labels, tf.constant(i if loo else -1), temperature))
    return tf.concat(out, 0)

def gap(pred, y):
    m = metrics.EvaluationMetrics(C, top_k=20); m.accumulate(np.asarray(pred, np.float32), y); return m.get()['gap']

refresh = {int(e) for e in args.refresh.split(',') if e}
steps_per_epoch = N // B
rng = np.random.default_rng(args.seed)
t0 = time.time()
for epoch in range(1, args.epochs + 1):
    perm = rng.permutation(N)
    for s in range(steps_per_epoch):
        loss = step(tf.constant(perm[s * B:(s + 1) * B]))
    msg = f'epoch {epoch} loss {float(loss):.3f} t {time.time() - t0:.0f}'
    if args.mode != 'none' and epoch in refresh:
        t1 = time.time(); H, _ = hidden(X); V.assign(votes(H, H, Yt, True)); have_v.assign(1.0)
        msg += f' refresh {time.time() - t1:.0f}s looGAP {gap(V.numpy(), Y):.4f}'
    print(msg, flush=True)
H, P = hidden(X); HE, PE = hidden(XE)
VE = votes(HE, H, Yt, False)
print('train time', round(time.time() - t0), 'mlp', round(gap(PE, YE), 4), 'vote', round(gap(VE, YE), 4),
      'mix0.3', round(gap(0.7 * PE + 0.3 * VE, YE), 4), 'mix0.4', round(gap(0.6 * PE + 0.4 * VE, YE), 4), flush=True)
XN = tf.constant(X / np.linalg.norm(X, axis=1, keepdims=True)); XEN = tf.constant(XE / np.linalg.norm(XE, axis=1, keepdims=True))
for al in (0.7, 0.85):
    VC = votes(tf.concat([al ** 0.5 * HE, (1 - al) ** 0.5 * XEN], 1), tf.concat([al ** 0.5 * H, (1 - al) ** 0.5 * XN], 1), Yt, False)
    print('combined keys', al, 'vote', round(gap(VC, YE), 4), 'mix0.3', round(gap(0.7 * PE + 0.3 * VC, YE), 4), flush=True)
# The output-space vote (--knn_output_weight): keys = the 32 largest entries of sqrt(p) of each training video.
R = np.sqrt(np.maximum(P.numpy(), 0.0)); top = np.argpartition(-R, 32, axis=1)[:, :32]
K = np.zeros_like(R); np.put_along_axis(K, top, np.take_along_axis(R, top, 1), 1)
K /= np.maximum(np.linalg.norm(K, axis=1, keepdims=True), 1e-12)
QE = np.sqrt(np.maximum(PE.numpy(), 0.0)); QE /= np.maximum(np.linalg.norm(QE, axis=1, keepdims=True), 1e-12)
OE = votes(tf.constant(QE), tf.constant(K), Yt, False, temperature=0.02)
print('output vote', round(gap(OE, YE), 4), 'mix 0.5/0.2/0.3 (video-best)', round(gap(0.5 * PE + 0.2 * VE + 0.3 * OE, YE), 4),
      flush=True)
if args.out:
    np.savez(args.out, p=PE.numpy(), v=VE.numpy())
if args.dump:
    np.savez(args.dump, h=H.numpy().astype(np.float16), p=P.numpy().astype(np.float16), y=Y.astype(bool),
             he=HE.numpy().astype(np.float16), pe=PE.numpy().astype(np.float16), ye=YE.astype(bool))
