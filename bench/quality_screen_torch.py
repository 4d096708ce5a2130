"""GPU screening of video-level recipes (PyTorch re-implementation), used to choose what the CLI runs of
docs/QUALITY.md measure. NOT part of the package and not needed to reproduce QUALITY.md (bench/quality_video.py
does that with train.py / eval.py); kept so the screening numbers in QUALITY.md can be re-run.

It mirrors the Keras components: Glorot-uniform kernels, zero biases except the output bias, per-tensor gradient
clipping at 1.0 (Keras `clipnorm`), cross entropy on probabilities with epsilon 1e-5, the starter L2 penalty,
sigmoid outputs, MoE with the dummy expert. Where both were run the numbers agree with the CLI to about 0.002 GAP
(logistic 12 epochs 0.6049 vs 0.6071; MLP reference 0.7015 vs 0.7011; the k-NN memory recipe 0.7316 vs 0.7316).

    # 1. here (needs TensorFlow): the split as numpy files (int8 features x 63, packed labels), about 47 MB
    python bench/quality_screen_torch.py export --data_dir ../shared/data/yt8m/v2-video --out screen_data
    # 2. on a machine with PyTorch and a GPU: one JSON line per run (curve = validation GAP after each epoch)
    python bench/quality_screen_torch.py base g2 g3 g4 g5 g6 g7 g8 g9 --data screen_data
"""
import argparse
import os
import copy
import json
import math
import sys
import time
import numpy as np


def export(data_dir, out):
    """Reads the split with the project's reader and writes {train,val}_{x,y}.npy (needs TensorFlow)."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import readers

    reader = readers.VideoLevelReader("mean_rgb,mean_audio", "1024,128", 3862)
    os.makedirs(out, exist_ok=True)
    for name, pattern in (("train", "validate00[0-7][0-9].tfrecord"), ("val", "validate00[89][0-9].tfrecord")):
        xs, ys = [], []
        for batch in reader.dataset(os.path.join(data_dir, pattern), 1024, shuffle=False):
            xs.append(batch["video_matrix"].numpy())
            ys.append(batch["labels"].numpy().astype(bool))
        x = np.concatenate(xs)
        np.save(os.path.join(out, f"{name}_x.npy"), np.clip(np.round(x * 63), -127, 127).astype(np.int8))
        np.save(os.path.join(out, f"{name}_y.npy"), np.packbits(np.concatenate(ys), axis=1))


if __name__ == "__main__":
    _parser = argparse.ArgumentParser()
    _parser.add_argument("groups", nargs="+")
    _parser.add_argument("--data", default="screen_data")
    _parser.add_argument("--data_dir", default="")
    _parser.add_argument("--out", default="screen_data")
    ARGS = _parser.parse_args()
    if ARGS.groups == ["export"]:
        export(ARGS.data_dir, ARGS.out)
        raise SystemExit(0)
    HERE = ARGS.data
else:
    raise ImportError("bench/quality_screen_torch.py is a script")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def load(name):
    x = torch.tensor(np.load(f"{HERE}/{name}_x.npy").astype(np.float32) / 63.0)
    yp = np.load(f"{HERE}/{name}_y.npy")
    y = torch.tensor(np.unpackbits(yp, axis=1)[:, :3862].astype(np.float32))
    return x.to(DEV), y.to(DEV)


XTR, YTR = load("train")
XVA, YVA = load("val")
MEAN, STD = XTR.mean(0), XTR.std(0)
PRIOR = YTR.mean(0)


def knn_preds(k=30, temp=0.1, wa=0.8):
    def nrm(x):
        return F.normalize(x[:, :1024], dim=1), F.normalize(x[:, 1024:], dim=1)
    ta, tb = nrm(XTR)
    va, vb = nrm(XVA)
    s = wa * va @ ta.T + (1 - wa) * vb @ tb.T
    sv, idx = s.topk(k, dim=1)
    w = torch.exp((sv - sv[:, :1]) / temp)
    return torch.einsum("nk,nkc->nc", w, YTR[idx]) / w.sum(1, keepdim=True)


PK = knn_preds()


def gap_metrics(p, y, k=20):
    top, idx = p.topk(k, dim=1)
    hits = y.gather(1, idx)
    s, h = top.flatten(), hits.flatten()
    h = h[s.argsort(descending=True)]
    prec = h.cumsum(0) / torch.arange(1, len(h) + 1, device=h.device)
    gap = float((prec * h).sum() / y.sum())
    return gap, float(hits[:, 0].mean())


class InputNorm(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        if kind == "ln":
            self.ln = nn.LayerNorm(1152)

    def forward(self, x):
        if self.kind == "none":
            return x
        if self.kind in ("l2", "l2s"):
            a, b = x[:, :1024], x[:, 1024:]
            a = F.normalize(a, dim=1, eps=1e-6)
            b = F.normalize(b, dim=1, eps=1e-6)
            if self.kind == "l2s":
                a, b = a * math.sqrt(1024), b * math.sqrt(128)
            return torch.cat([a, b], 1)
        if self.kind == "pow":
            x = torch.sign(x) * torch.sqrt(torch.abs(x))
            a, b = F.normalize(x[:, :1024], dim=1) * math.sqrt(1024), F.normalize(x[:, 1024:], dim=1) * math.sqrt(128)
            return torch.cat([a, b], 1)
        if self.kind == "std":
            return (x - MEAN) / STD
        if self.kind == "ln":
            return self.ln(x)
        raise ValueError(self.kind)


def glorot(lin):
    nn.init.xavier_uniform_(lin.weight)
    if lin.bias is not None:
        nn.init.zeros_(lin.bias)
    return lin


class Net(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.norm = InputNorm(c["in_norm"])
        self.in_drop = nn.Dropout(c["in_dropout"])
        layers, d = [], 1152
        for hsz in c["hidden"]:
            lin = glorot(nn.Linear(d, hsz, bias=not c["ln"]))
            layers.append(lin)
            if c["ln"]:
                layers.append(nn.LayerNorm(hsz, eps=1e-6))
            if c.get("bn"):
                layers.append(nn.BatchNorm1d(hsz))
            layers.append(nn.ReLU() if c["act"] == "relu" else nn.GELU())
            layers.append(nn.Dropout(c["dropout"]))
            d = hsz
        self.body = nn.Sequential(*layers)
        self.cg = glorot(nn.Linear(d, d)) if c.get("cg") else None
        self.wide = glorot(nn.Linear(1152, 3862, bias=False)) if c.get("wide") else None
        C = 3862
        if c["head"] == "logit":
            self.out = glorot(nn.Linear(d, C))
            nn.init.constant_(self.out.bias, c["bias"])
        else:
            E = c["experts"]
            self.gates = glorot(nn.Linear(d, C * (E + 1), bias=c.get("gate_bias", False)))
            self.experts = glorot(nn.Linear(d, C * E))
            nn.init.constant_(self.experts.bias, c["bias"])
            if c.get("gate_bias"):
                nn.init.zeros_(self.gates.bias)

    def forward(self, x):
        xn = self.norm(x)
        if self.training and self.c.get("mod_drop"):
            keep = (torch.rand(len(x), 2, device=x.device) > self.c["mod_drop"]).float()
            both_off = keep.sum(1, keepdim=True) == 0
            keep = torch.where(both_off, torch.ones_like(keep), keep)
            xn = torch.cat([xn[:, :1024] * keep[:, :1], xn[:, 1024:] * keep[:, 1:]], 1)
        if self.training and self.c.get("noise"):
            xn = xn + self.c["noise"] * torch.randn_like(xn)
        xn = self.in_drop(xn)
        h = self.body(xn)
        if self.cg is not None:
            h = h * torch.sigmoid(self.cg(h))
        if self.c["head"] == "logit":
            z = self.out(h)
            if self.wide is not None:
                z = z + self.wide(xn)
            if self.c["loss"] == "softmax":
                return torch.softmax(z, 1), z
            return torch.sigmoid(z), z
        E = self.c["experts"]
        g = self.gates(h).view(-1, 3862, E + 1).softmax(-1)[..., :E]
        e = torch.sigmoid(self.experts(h).view(-1, 3862, E))
        return (g * e).sum(-1), None


class Branches(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.nets = nn.ModuleList([Net(c) for _ in range(c["branches"])])

    def each(self, x):
        return [n(x) for n in self.nets]

    def forward(self, x):
        return torch.stack([n(x)[0] for n in self.nets]).mean(0), None


def loss_fn(c, p, z, y):
    ls = c["ls"]
    if ls:
        if c["ls_kind"] == "pos":
            y = y * (1 - ls)
        elif c["ls_kind"] == "uniform":
            y = y * (1 - ls) + ls / 2
        elif c["ls_kind"] == "prior":
            y = y * (1 - ls) + ls * PRIOR
    if c["loss"] == "softmax":
        return -(y / y.sum(1, keepdim=True).clamp_min(1e-7) * F.log_softmax(z, dim=1)).sum(1).mean()
    if c["loss"] == "logits" and z is not None:
        per = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    else:
        eps = c["eps"]
        p = p.clamp(0, 1)
        per = -(y * torch.log(p + eps) + (1 - y) * torch.log(1 - p + eps))
        if c["loss"] == "huber":
            d = c["delta"]
            per = per.square() / (torch.sqrt(1 + (per / d).square()) + 1)
    return per.sum(1).mean()


def lr_at(c, step, steps_per_epoch, total):
    lr = c["lr"]
    if c["warmup"]:
        lr *= min(1.0, (step + 1) / c["warmup"])
    if c["sched"] == "exp":
        lr *= c["decay"] ** math.floor(step * c["batch"] / c["decay_examples"])
    elif c["sched"] == "cos":
        lr *= 0.5 * (1 + math.cos(math.pi * step / total))
    return lr


DEFAULT = dict(in_norm="none", in_dropout=0.0, hidden=[2048], ln=True, act="relu", dropout=0.5, head="logit",
               experts=2, bias=math.log(1 / 1000), cg=False, loss="ce", eps=1e-5, delta=0.5, ls=0.0, ls_kind="pos",
               opt="adam", lr=1e-3, wd=0.0, batch=256, epochs=6, warmup=0, sched="none", decay=0.95,
               decay_examples=4_000_000, clip=1.0, branches=1, ema=0.0, seed=0, mixup=0.0, l2=1e-8, train="train")


def predict(model, x):
    model.train(False)
    with torch.no_grad():
        out = torch.cat([model(x[i:i + 4096])[0] for i in range(0, len(x), 4096)])
    model.train()
    return out


def run(c, keep_preds=False):
    c = {**DEFAULT, **c}
    torch.manual_seed(c["seed"])
    if c["train"] == "all":
        xtr, ytr = torch.cat([XTR, XVA]), torch.cat([YTR, YVA])
    elif isinstance(c["train"], float):
        m = int(len(XTR) * c["train"])
        xtr, ytr = XTR[:m], YTR[:m]
    else:
        xtr, ytr = XTR, YTR
    model = (Branches(c) if c["branches"] > 1 else Net(c)).to(DEV)
    decay_params = [p for n, p in model.named_parameters()]
    if c["opt"] == "adamw":
        opt = torch.optim.AdamW(decay_params, lr=c["lr"], weight_decay=c["wd"], eps=1e-8)
    else:
        opt = torch.optim.Adam(decay_params, lr=c["lr"], eps=1e-8)
    ema = copy.deepcopy(model) if c["ema"] else None
    n = len(xtr)
    spe = n // c["batch"]
    total = spe * c["epochs"]
    step = 0
    hist = []
    t0 = time.time()
    g = torch.Generator(device=DEV)
    g.manual_seed(c["seed"])
    preds = []
    for ep in range(c["epochs"]):
        perm = torch.randperm(n, device=DEV, generator=g)
        for i in range(spe):
            idx = perm[i * c["batch"]:(i + 1) * c["batch"]]
            x, y = xtr[idx], ytr[idx]
            if c["mixup"]:
                lam = float(np.random.beta(c["mixup"], c["mixup"]))
                j = torch.randperm(len(x), device=DEV)
                x = lam * x + (1 - lam) * x[j]
                y = lam * y + (1 - lam) * y[j]
            for group in opt.param_groups:
                group["lr"] = lr_at(c, step, spe, total)
            if c["branches"] > 1:
                loss = sum(loss_fn(c, p, z, y) for p, z in model.each(x)) / c["branches"]
            else:
                p, z = model(x)
                loss = loss_fn(c, p, z, y)
            if c["l2"]:
                reg = sum((m.weight.square().sum() for m in model.modules() if isinstance(m, nn.Linear)))
                loss = loss + c["l2"] * reg / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if c["clip"]:
                for prm in model.parameters():
                    if prm.grad is not None:
                        nrm = prm.grad.norm()
                        if nrm > c["clip"]:
                            prm.grad.mul_(c["clip"] / nrm)
            opt.step()
            step += 1
            if ema is not None:
                with torch.no_grad():
                    dcy = min(c["ema"], (1 + step) / (10 + step))
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.mul_(dcy).add_(pm.detach(), alpha=1 - dcy)
                    for be, bm in zip(ema.buffers(), model.buffers()):
                        be.copy_(bm)
        pv = predict(model, XVA)
        gap, hit1 = gap_metrics(pv, YVA)
        rec = {"ep": ep + 1, "gap": round(gap, 4), "hit1": round(hit1, 4), "loss": round(float(loss), 2)}
        if ema is not None:
            pe = predict(ema, XVA)
            rec["ema_gap"] = round(gap_metrics(pe, YVA)[0], 4)
            pv = pe
        if keep_preds:
            preds.append(pv)
        hist.append(rec)
    best = max(hist, key=lambda r: r.get("ema_gap", r["gap"]))
    for a in (0.3, 0.4):
        hist[-1][f"knn{a}"] = round(gap_metrics((1 - a) * pv + a * PK, YVA)[0], 4)
    params = sum(p.numel() for p in model.parameters())
    global _LAST
    _LAST = model
    return c, hist, best, time.time() - t0, params, preds


def report(tag, c, hist, best, secs, params):
    diff = {k: v for k, v in c.items() if DEFAULT.get(k) != v}
    print(json.dumps({"tag": tag, "cfg": diff, "best_ep": best["ep"], "best": best.get("ema_gap", best["gap"]),
                      "last": hist[-1].get("ema_gap", hist[-1]["gap"]),
                      "curve": [r.get("ema_gap", r["gap"]) for r in hist],
                      "knn": [hist[-1]["knn0.3"], hist[-1]["knn0.4"]], "raw_last": hist[-1]["gap"], "secs": round(secs, 1),
                      "params": params}), flush=True)


def sweep(configs, tag):
    for cfg in configs:
        try:
            c, hist, best, secs, params, _ = run(cfg)
            report(tag, c, hist, best, secs, params)
        except Exception as e:  # keep going
            print(json.dumps({"tag": tag, "cfg": cfg, "error": repr(e)[:300]}), flush=True)


def ensemble(configs, tag):
    """Average the final-epoch predictions of several runs."""
    total = None
    for i, cfg in enumerate(configs):
        c, hist, best, secs, params, preds = run(cfg, keep_preds=True)
        report(tag + "-member", c, hist, best, secs, params)
        total = preds[-1] if total is None else total + preds[-1]
        gap, hit1 = gap_metrics(total / (i + 1), YVA)
        mix = gap_metrics(0.7 * total / (i + 1) + 0.3 * PK, YVA)[0]
        print(json.dumps({"tag": tag, "members": i + 1, "gap": round(gap, 4), "hit1": round(hit1, 4),
                          "knn0.3": round(mix, 4)}), flush=True)


GROUPS = {}


def group(fn):
    GROUPS[fn.__name__] = fn
    return fn


@group
def smoke():
    sweep([dict(epochs=1), dict(epochs=1, head="moe", hidden=[], ema=0.99, loss="logits")], "smoke")


@group
def base():
    L = math.log(1 / 1000)
    sweep([
        dict(hidden=[], head="logit", bias=0.0, lr=0.01, batch=1024, epochs=12, dropout=0),  # logistic ref
        dict(hidden=[], head="logit", bias=L, lr=0.01, batch=1024, epochs=12, dropout=0),
        dict(hidden=[], head="moe", bias=0.0, lr=0.005, batch=1024, epochs=12),  # starter moe
        dict(hidden=[], head="moe", bias=L, lr=0.005, batch=1024, epochs=12),
        dict(hidden=[], head="moe", bias=L, lr=0.01, batch=1024, epochs=12),
        dict(hidden=[], head="moe", bias=L, lr=0.01, batch=1024, epochs=12, experts=4),
        dict(hidden=[], head="moe", bias=0.0, lr=0.005, batch=1024, epochs=12, in_norm="l2s"),
        dict(epochs=8),  # MLP reference
        dict(epochs=8, bias=0.0),
        dict(epochs=8, in_norm="l2s"),
        dict(epochs=8, in_norm="std"),
        dict(epochs=8, in_norm="ln"),
        dict(epochs=8, in_norm="l2"),
        dict(epochs=8, loss="logits"),
        dict(epochs=8, loss="huber"),
        dict(epochs=8, ls=0.1),
        dict(epochs=8, ls=0.1, ls_kind="prior"),
        dict(epochs=8, ema=0.999),
        dict(epochs=8, dropout=0.7),
        dict(epochs=8, dropout=0.7, in_dropout=0.2),
        dict(epochs=8, in_dropout=0.3),
        dict(epochs=8, hidden=[4096], dropout=0.7),
        dict(epochs=8, hidden=[8192], dropout=0.8),
        dict(epochs=8, hidden=[2048, 2048]),
        dict(epochs=8, opt="adamw", wd=0.05),
        dict(epochs=8, opt="adamw", wd=0.5),
        dict(epochs=8, mixup=0.4),
        dict(epochs=8, cg=True),
        dict(epochs=8, head="moe", experts=2),
        dict(epochs=8, head="moe", experts=4),
        dict(epochs=8, batch=128, lr=5e-4),
        dict(epochs=8, batch=512, lr=2e-3, warmup=100),
        dict(epochs=8, lr=3e-3, warmup=200),
        dict(epochs=8, sched="cos"),
        dict(epochs=8, seed=1),
        dict(epochs=8, seed=2),
    ], "base")


@group
def g2():
    print(json.dumps({"knn": round(gap_metrics(PK, YVA)[0], 4)}))
    R = dict(in_dropout=0.2, dropout=0.7)
    sweep([
        dict(R, epochs=16),
        dict(R, epochs=16, sched="cos"),
        dict(R, epochs=16, sched="cos", ema=0.999),
        dict(R, epochs=12, sched="cos", ema=0.999),
        dict(R, epochs=24, sched="cos", ema=0.999),
        dict(R, epochs=16, sched="cos", in_norm="l2s"),
        dict(R, epochs=16, sched="cos", hidden=[1024]),
        dict(R, epochs=16, sched="cos", hidden=[3072]),
        dict(R, epochs=16, sched="cos", hidden=[4096], lr=5e-4),
        dict(R, epochs=16, sched="cos", in_dropout=0.4),
        dict(R, epochs=16, sched="cos", dropout=0.8),
        dict(R, epochs=16, sched="cos", bn=True, ln=False),
        dict(R, epochs=16, sched="cos", loss="softmax", bias=0.0),
        dict(R, epochs=16, sched="cos", lr=2e-3, warmup=100),
        dict(R, epochs=16, sched="cos", lr=5e-4),
        dict(R, epochs=16, sched="cos", batch=128),
        dict(R, epochs=16, sched="cos", batch=512, lr=2e-3),
        dict(R, epochs=16, sched="cos", opt="adamw", wd=1.0),
        dict(R, epochs=16, sched="cos", head="moe", experts=2),
        dict(R, epochs=16, sched="cos", branches=4, hidden=[512]),
        dict(R, epochs=16, sched="cos", branches=4, hidden=[1024]),
        dict(R, epochs=16, sched="cos", act="gelu"),
        dict(R, epochs=16, sched="cos", hidden=[2048, 2048]),
        dict(R, epochs=16, sched="cos", ls=0.05),
        dict(epochs=16, sched="cos", ema=0.999, in_dropout=0.3, dropout=0.6),
    ], "g2")


@group
def ens():
    R = dict(in_dropout=0.2, dropout=0.7, epochs=16, sched="cos")
    ensemble([dict(R, seed=s) for s in range(5)], "ens5")


def knn_from(tr, va, k, temp, y=None):
    y = YTR if y is None else y
    out = []
    for i in range(0, len(va), 2048):
        s = va[i:i + 2048] @ tr.T
        sv, idx = s.topk(k, dim=1)
        w = torch.exp((sv - sv[:, :1]) / temp)
        out.append(torch.einsum("nk,nkc->nc", w, y[idx]) / w.sum(1, keepdim=True))
    return torch.cat(out)


def hidden_of(model, x):
    model.train(False)
    with torch.no_grad():
        h = torch.cat([model.body(model.norm(x[i:i + 4096])) for i in range(0, len(x), 4096)])
    model.train()
    return h


@group
def g3():
    # raw-feature kNN grid
    def nrm(x):
        return F.normalize(x[:, :1024], dim=1), F.normalize(x[:, 1024:], dim=1)
    ta, tb = nrm(XTR)
    va, vb = nrm(XVA)
    res = {}
    for wa in (0.5, 0.6, 0.7, 0.8):
        tr = torch.cat([ta * math.sqrt(wa), tb * math.sqrt(1 - wa)], 1)
        vv = torch.cat([va * math.sqrt(wa), vb * math.sqrt(1 - wa)], 1)
        for k in (20, 50, 100):
            for temp in (0.03, 0.05, 0.1, 0.2):
                res[f"{wa}-{k}-{temp}"] = round(gap_metrics(knn_from(tr, vv, k, temp), YVA)[0], 4)
    best = sorted(res.items(), key=lambda kv: -kv[1])[:8]
    print(json.dumps({"raw_knn_top": best}), flush=True)
    # sqrt-power normalisation of the input
    R = dict(in_dropout=0.2, dropout=0.7, epochs=16, sched="cos", in_norm="l2s", act="gelu")
    c, hist, bst, secs, params, preds = run(R, keep_preds=True)
    report("g3-ref", c, hist, bst, secs, params)
    pm = preds[-1]
    torch.manual_seed(0)
    model = None
    # retrain to get the model object (run() does not return it): quick re-run with same seed
    global _LAST
    mdl = _LAST
    ht, hv = hidden_of(mdl, XTR), hidden_of(mdl, XVA)
    for name, (a, b) in {"hidden": (ht, hv), "hidden_c": (ht - ht.mean(0), hv - ht.mean(0))}.items():
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        for k in (20, 50, 100):
            for temp in (0.02, 0.05, 0.1):
                pk = knn_from(a, b, k, temp)
                g = gap_metrics(pk, YVA)[0]
                mixes = {m: round(gap_metrics((1 - m) * pm + m * pk, YVA)[0], 4) for m in (0.2, 0.3, 0.4, 0.5)}
                print(json.dumps({"emb": name, "k": k, "t": temp, "knn": round(g, 4), "mix": mixes}), flush=True)
    # train-set fit
    pt = predict(mdl, XTR[:5000])
    print(json.dumps({"train_gap": round(gap_metrics(pt, YTR[:5000])[0], 4)}), flush=True)


@group
def g4():
    R = dict(in_dropout=0.2, dropout=0.7, epochs=16, sched="cos", in_norm="l2s", act="gelu")
    sweep([
        dict(R, in_norm="pow"),
        dict(R, wide=True),
        dict(R, opt="adamw", wd=1.0),
        dict(R, ema=0.999, opt="adamw", wd=1.0),
        dict(R, hidden=[4096], lr=5e-4, in_dropout=0.3, dropout=0.75),
        dict(R, hidden=[4096], lr=5e-4, in_dropout=0.3, dropout=0.75, epochs=24),
        dict(R, bias=-5.0),
        dict(R, bias=-8.0),
        dict(R, eps=1e-7),
        dict(R, batch=128, lr=7e-4),
    ], "g4")


@group
def g5():
    R = dict(in_dropout=0.2, dropout=0.7, epochs=16, sched="cos", in_norm="l2s", act="gelu")
    # schedules the trainer has: staircase exponential decay (per examples) after warmup
    n = 23091
    sweep([
        dict(R, sched="exp", decay=0.8, decay_examples=n),
        dict(R, sched="exp", decay=0.7, decay_examples=n),
        dict(R, sched="exp", decay=0.6, decay_examples=n, lr=2e-3, warmup=100),
        dict(R, sched="exp", decay=0.75, decay_examples=n, epochs=12),
        dict(R, act="relu"),
        dict(R, mod_drop=0.2),
        dict(R, noise=0.3),
        dict(R, noise=0.6, in_dropout=0.0),
        dict(R, train=0.5),
        dict(R, train=0.75),
        dict(R, hidden=[4096], lr=5e-4, in_dropout=0.3, dropout=0.75, epochs=16, opt="adamw", wd=1.0),
        dict(R, hidden=[4096], lr=5e-4, in_dropout=0.3, dropout=0.8, epochs=20),
        dict(R, hidden=[3072], lr=7e-4, in_dropout=0.3, dropout=0.75, epochs=16),
    ], "g5")
    # ensemble of 4 + hidden kNN of each
    members, knns = [], []
    for seed in range(4):
        c, hist, bst, secs, params, preds = run(dict(R, seed=seed), keep_preds=True)
        mdl = _LAST
        ht, hv = F.normalize(hidden_of(mdl, XTR), dim=1), F.normalize(hidden_of(mdl, XVA), dim=1)
        members.append(preds[-1])
        knns.append(knn_from(ht, hv, 50, 0.05))
        pm = sum(members) / len(members)
        pk = sum(knns) / len(knns)
        out = {"members": seed + 1, "ens": round(gap_metrics(pm, YVA)[0], 4),
               "ens+hknn": {a: round(gap_metrics((1 - a) * pm + a * pk, YVA)[0], 4) for a in (0.2, 0.3, 0.4)},
               "ens+rawknn": round(gap_metrics(0.7 * pm + 0.3 * PK, YVA)[0], 4),
               "ens+both": round(gap_metrics(0.6 * pm + 0.25 * pk + 0.15 * PK, YVA)[0], 4)}
        print(json.dumps(out), flush=True)


def run_memory(c, M, proj=0, dedupe=False, ks=((50, 0.05),), mixes=(0.2, 0.3, 0.4)):
    """Train like run() but write clean hidden embeddings of every batch into a ring buffer of size M."""
    c = {**DEFAULT, **c}
    torch.manual_seed(c["seed"])
    xtr, ytr = XTR, YTR
    model = Net(c).to(DEV)
    opt = torch.optim.Adam(model.parameters(), lr=c["lr"], eps=1e-8)
    n = len(xtr)
    spe = n // c["batch"]
    total = spe * c["epochs"]
    d = c["hidden"][-1]
    P = torch.randn(d, proj, device=DEV) / math.sqrt(proj) if proj else None
    keys = torch.zeros(M, proj or d, device=DEV)
    labs = torch.zeros(M, 3862, device=DEV)
    fp = torch.full((M,), float("nan"), device=DEV)
    fpv = torch.randn(1152, device=DEV)
    ptr = 0
    step = 0
    g = torch.Generator(device=DEV)
    g.manual_seed(c["seed"])
    for ep in range(c["epochs"]):
        perm = torch.randperm(n, device=DEV, generator=g)
        for i in range(spe):
            idx = perm[i * c["batch"]:(i + 1) * c["batch"]]
            x, y = xtr[idx], ytr[idx]
            for group in opt.param_groups:
                group["lr"] = lr_at(c, step, spe, total)
            p, z = model(x)
            loss = loss_fn(c, p, z, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for prm in model.parameters():
                nrm = prm.grad.norm()
                if nrm > 1.0:
                    prm.grad.mul_(1.0 / nrm)
            opt.step()
            step += 1
            with torch.no_grad():
                model.train(False)
                e = model.body(model.norm(x))
                model.train()
                if P is not None:
                    e = e @ P
                slots = (ptr + torch.arange(len(x), device=DEV)) % M
                keys[slots] = F.normalize(e, dim=1)
                labs[slots] = y
                fp[slots] = x @ fpv
                ptr += len(x)
    pm = predict(model, XVA)
    out = {"cfg": {k: v for k, v in c.items() if DEFAULT.get(k) != v}, "M": M, "proj": proj, "dedupe": dedupe,
           "mlp": round(gap_metrics(pm, YVA)[0], 4)}
    hv = hidden_of(model, XVA)
    if P is not None:
        hv = hv @ P
    hv = F.normalize(hv, dim=1)
    valid = ~torch.isnan(fp)
    for k, t in ks:
        res = []
        for i in range(0, len(hv), 2048):
            s = hv[i:i + 2048] @ keys.T
            s[:, ~valid] = -1e9
            sv, ix = s.topk(k, dim=1)
            w = torch.exp((sv - sv[:, :1]) / t)
            if dedupe:
                f = fp[ix]
                same = (f[:, :, None] == f[:, None, :]) & torch.tril(torch.ones(k, k, dtype=torch.bool, device=DEV), -1)[None]
                w = w * (~same.any(2)).float()
            res.append(torch.einsum("nk,nkc->nc", w, labs[ix]) / w.sum(1, keepdim=True))
        pk = torch.cat(res)
        out[f"knn{k}-{t}"] = round(gap_metrics(pk, YVA)[0], 4)
        out[f"mix{k}-{t}"] = {a: round(gap_metrics((1 - a) * pm + a * pk, YVA)[0], 4) for a in mixes}
    print(json.dumps(out), flush=True)


@group
def g6():
    n = 23091
    R = dict(dropout=0.7, in_norm="l2s", act="gelu", noise=0.6, epochs=16, sched="exp", decay=0.8, decay_examples=n)
    run_memory(R, n - n % 256)  # exactly the last epoch's examples
    run_memory(R, 32768)
    run_memory(R, 32768, dedupe=True, ks=((50, 0.05), (100, 0.05), (50, 0.03), (30, 0.05)))
    run_memory(R, 32768, dedupe=True, proj=256)
    run_memory(R, 32768, dedupe=True, proj=512)
    run_memory(R, 16384, dedupe=True)
    run_memory(dict(R, decay=0.75, epochs=12), 32768, dedupe=True)
    run_memory(dict(R, sched="cos"), 32768, dedupe=True)
    run_memory(dict(R, hidden=[1024]), 32768, dedupe=True)
    sweep([dict(R, noise=0.8), dict(R, noise=1.0), dict(R, noise=0.6, in_dropout=0.2), dict(R, noise=0.6, dropout=0.6),
           dict(R, noise=0.6, batch=512, lr=2e-3, warmup=50), dict(R, noise=0.6, epochs=12, decay=0.75),
           dict(R, noise=0.8, hidden=[4096], lr=5e-4, dropout=0.75),
           dict(R, in_norm="ln"), dict(R, in_norm="none", noise=0.4)], "g6")


@group
def g7():
    n = 23091
    F_ = dict(dropout=0.6, in_norm="l2s", act="gelu", noise=0.6, epochs=16, sched="exp", decay=0.8, decay_examples=n,
              batch=512, lr=2e-3, warmup=50)
    ks = ((50, 0.05), (100, 0.05), (50, 0.1))
    run_memory(F_, 32768, dedupe=True, ks=ks, mixes=(0.2, 0.25, 0.3, 0.4))
    run_memory(dict(F_, act="relu"), 32768, dedupe=True, ks=ks)
    run_memory(dict(F_, epochs=12, decay=0.75), 32768, dedupe=True, ks=ks)
    run_memory(dict(F_, decay=0.75), 32768, dedupe=True, ks=ks)
    run_memory(dict(F_, seed=1), 32768, dedupe=True, ks=ks)
    run_memory(dict(F_, seed=2), 32768, dedupe=True, ks=ks)
    run_memory(dict(F_, batch=256, lr=1e-3, warmup=0), 32768, dedupe=True, ks=ks)
    run_memory(dict(F_, dropout=0.5), 32768, dedupe=True, ks=ks)
    run_memory(dict(F_, noise=0.5, dropout=0.5), 32768, dedupe=True, ks=ks)
    run_memory(dict(F_, hidden=[3072], lr=1.5e-3), 32768, dedupe=True, ks=ks)


@group
def g8():
    n = 23091
    F_ = dict(dropout=0.6, in_norm="l2s", act="gelu", noise=0.6, epochs=16, sched="exp", decay=0.8, decay_examples=n,
              batch=512, lr=2e-3, warmup=50)
    global XTR, YTR
    X0, Y0 = XTR, YTR
    for frac in (0.5, 0.75):
        m = int(len(X0) * frac)
        XTR, YTR = X0[:m], Y0[:m]
        run_memory(dict(F_, decay_examples=m), 32768, dedupe=True)
    XTR, YTR = X0, Y0


@group
def g9():
    L = math.log(1 / 1000)
    M = dict(hidden=[], head="moe", bias=L, lr=0.005, batch=1024, epochs=8)
    sweep([
        dict(M),
        dict(M, in_norm="l2s"),
        dict(M, in_norm="l2s", lr=0.002),
        dict(M, in_norm="l2s", lr=0.002, epochs=12),
        dict(M, in_norm="l2s", noise=0.6),
        dict(M, in_norm="l2s", noise=0.6, epochs=12),
        dict(M, in_norm="l2s", experts=4),
        dict(M, in_norm="l2s", experts=8, lr=0.002),
        dict(M, in_norm="l2s", lr=0.002, batch=256),
        dict(M, in_norm="l2s", opt="adamw", wd=1.0, lr=0.002),
        dict(M, in_norm="l2s", sched="exp", decay=0.75, decay_examples=25000, lr=0.005, warmup=20),
        dict(M, lr=0.001, batch=256),
        dict(hidden=[], head="logit", bias=L, lr=0.01, batch=1024, epochs=8, in_norm="l2s", dropout=0),
        dict(hidden=[], head="logit", bias=L, lr=0.002, batch=1024, epochs=8, in_norm="l2s", dropout=0, noise=0.6),
    ], "g9")


for _name in ARGS.groups:
    GROUPS[_name]()
