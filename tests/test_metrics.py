"""Tests for yt8m_tf.metrics against hand-computed values and a plain-loop reference."""

import numpy as np
import pytest
import tensorflow as tf

from yt8m_tf import metrics as M

# 3 videos x 4 classes.
P3 = np.array(
    [
        [0.9, 0.1, 0.5, 0.3],
        [0.2, 0.8, 0.6, 0.4],
        [0.3, 0.7, 0.2, 0.1],
    ]
)
L3 = np.array(
    [
        [1, 0, 0, 1],
        [0, 0, 1, 0],
        [0, 0, 0, 0],  # a video with no positives
    ]
)


# ----------------------------------------------------------------------------------------- hand values


def test_hand_example_top_k_2_positive_outside_top_k():
    # k=2 triplets (score, label): v0 (.9,+) (.5,-); v1 (.8,-) (.6,+); v2 (.7,-) (.3,-).
    # v0's positive class 3 (score .3) is outside its top-2 but still counts: total positives = 3.
    # GAP ranking .9+ .8- .7- .6+ .5- .3-: AP = (1/1 + 2/4) / 3 = 0.5
    # Hit@1: v0 class0 hit, v1 class1 miss, v2 miss -> 1/3
    # PERR: v0 n=2 top2={0,2} -> 1/2; v1 n=1 top1={1} -> 0; v2 n=0 -> 0 (still counted): (0.5+0+0)/3 = 1/6
    # mAP: c0 entries (.9+ v0, .3- v2), P=1 -> 1; c2 entries (.5- v0, .6+ v1), P=1 -> ranked .6+ -> 1;
    #      c3 P=1 but no entry in any top-2 -> 0; c1 has no positives -> left out. (1+1+0)/3 = 2/3
    m = M.EvaluationMetrics(4, top_k=2)
    batch = m.accumulate(P3, L3, loss=[1.0, 2.0, 3.0])
    assert batch["hit_at_one"] == pytest.approx(1 / 3)
    assert batch["perr"] == pytest.approx(1 / 6)
    assert batch["loss"] == pytest.approx(2.0)
    out = m.get()
    assert set(out) == {"gap", "map", "hit_at_one", "perr", "loss", "num_examples"}
    assert out["gap"] == pytest.approx(0.5)
    assert out["map"] == pytest.approx(2 / 3)
    assert out["hit_at_one"] == pytest.approx(1 / 3)
    assert out["perr"] == pytest.approx(1 / 6)
    assert out["loss"] == pytest.approx(2.0)
    assert out["num_examples"] == 3
    assert all(type(out[key]) is float for key in ("gap", "map", "hit_at_one", "perr", "loss"))
    assert type(out["num_examples"]) is int
    assert M.calculate_gap(P3, L3, top_k=2) == pytest.approx(0.5)
    assert M.calculate_map(P3, L3, top_k=2) == pytest.approx(2 / 3)
    assert M.calculate_hit_at_one(P3, L3) == pytest.approx(1 / 3)
    assert M.calculate_precision_at_equal_recall_rate(P3, L3) == pytest.approx(1 / 6)
    aps = m.class_average_precisions()
    np.testing.assert_allclose(aps, [1.0, np.nan, 1.0, 0.0])


def test_hand_example_all_classes_with_tie():
    # k=20 is clipped to 4: all 12 triplets. Ranked:
    # .9(v0c0 +) .8(v1c1) .7(v2c1) .6(v1c2 +) .5(v0c2) .4(v1c3) .3(v0c3 +) .3(v2c0) .2 .2 .1 .1
    # The tie at .3 is broken by accumulation order (v0 before v2), so the positive is at rank 7.
    # GAP = (1/1 + 2/4 + 3/7) / 3 = (14 + 7 + 6) / 42 = 9/14
    # mAP: c0 (.9+, .3-, .2-) -> 1; c2 (.6+, .5-, .2-) -> 1; c3 (.4-, .3+, .1-) -> (1/2)/1; (1+1+.5)/3 = 5/6
    assert M.calculate_gap(P3, L3) == pytest.approx(9 / 14)
    assert M.calculate_map(P3, L3) == pytest.approx(5 / 6)
    # AP@n (official top_n): first n entries per class, denominator min(P_c, n).
    # n=1: c0 .9+ -> 1; c2 .6+ -> 1; c3 .4- -> 0: mean 2/3
    assert M.calculate_map(P3, L3, top_n=1) == pytest.approx(2 / 3)


def test_gap_tie_order_is_accumulation_order():
    # Two videos, one class each scored 0.5: (v0 negative, v1 positive). Stable order: - then + -> AP = 1/2.
    p = np.array([[0.5], [0.5]])
    assert M.calculate_gap(p, np.array([[0], [1]]), top_k=1) == pytest.approx(0.5)
    assert M.calculate_gap(p, np.array([[1], [0]]), top_k=1) == pytest.approx(1.0)


def test_packed_key_ranking_and_class_groups_equal_stable_argsort(monkeypatch):
    # _rank_by_score (packed float32 keys, in chunks) ranks exactly as a stable argsort of -scores: ties in
    # input order, -0.0 == 0.0, NaN last; _class_aps gives the same bits for any size of its class groups.
    rng = np.random.default_rng(3)
    special = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-45, -1e-45, 0.25, -0.25], np.float32)
    scores = rng.choice(special, 3000)
    classes, positives, keep = rng.integers(0, 7, 3000), rng.random(3000) < 0.4, rng.random(3000) < 0.7
    denominators = np.bincount(classes[positives], minlength=7) + 1
    order = np.argsort(-scores, kind="stable")
    monkeypatch.setattr(M, "_KEY_CHUNK", 7)
    ranked = M._rank_by_score(scores, classes, positives, keep)
    for got, column in zip(ranked, (classes, positives, keep)):
        np.testing.assert_array_equal(got, column[order])
    for cutoff, ranked_keep in ((None, None), (3, None), (None, ranked[2])):
        expected = M._class_aps(*ranked[:2], 7, denominators, cutoff=cutoff, ranked_keep=ranked_keep)
        monkeypatch.setattr(M, "_CLASS_GROUP", 1000)  # groups of 2-3 classes
        grouped = M._class_aps(*ranked[:2], 7, denominators, cutoff=cutoff, ranked_keep=ranked_keep)
        monkeypatch.undo()
        np.testing.assert_array_equal(grouped, expected)


def test_hit_at_one_ties_take_lowest_class_index():
    # argmax of [.5, .5, .1] is class 0 (as numpy.argmax in the official code)
    p = np.array([[0.5, 0.5, 0.1], [0.5, 0.5, 0.1]])
    l = np.array([[0, 1, 0], [1, 0, 0]])
    assert M.calculate_hit_at_one(p, l) == pytest.approx(0.5)
    m = M.EvaluationMetrics(3, top_k=1)
    assert m.accumulate(p, l)["hit_at_one"] == pytest.approx(0.5)


def test_perr_counts_only_positive_scores_and_more_positives_than_k():
    p = np.array(
        [
            [0.0, -1.0, -2.0, -3.0],  # n=1, top1 = class0 (positive) but score 0 is not > 0 -> 0
            [0.9, 0.8, 0.1, 0.7],  # n=3 > k=2, top3 = {0,1,3} all positive -> 1
            [0.9, 0.8, 0.7, 0.1],  # n=3, top3 = {0,1,2}, positives {0,1,3} -> 2/3
            [0.4, 0.3, 0.2, 0.1],  # n=0 -> 0
        ]
    )
    l = np.array([[1, 0, 0, 0], [1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 0, 0]])
    expected = (0 + 1 + 2 / 3 + 0) / 4
    assert M.calculate_precision_at_equal_recall_rate(p, l) == pytest.approx(expected)
    for xla_compatible in (True, False):
        out = M.top_k_step_outputs(p, l, k=2, xla_compatible=xla_compatible)
        np.testing.assert_allclose(out["perr"].numpy(), [0, 1, 2 / 3, 0])
    m = M.EvaluationMetrics(4, top_k=2)
    m.accumulate(p, l)
    assert m.get()["perr"] == pytest.approx(expected)


def test_no_positives_at_all():
    m = M.EvaluationMetrics(3, top_k=2)
    m.accumulate(np.array([[0.1, 0.2, 0.3]]), np.zeros((1, 3)))
    out = m.get()
    assert out["gap"] == 0.0 and out["perr"] == 0.0 and out["hit_at_one"] == 0.0
    assert np.isnan(out["map"]) and np.isnan(out["loss"])


def test_loss_averaging_num_examples_and_clear():
    m = M.EvaluationMetrics(4, top_k=2)
    rng = np.random.default_rng(0)
    # batch of 2 with mean loss 1.0 (scalar), batch of 3 with per-example [2, 2, 5], batch of 1 without loss
    assert m.accumulate(rng.random((2, 4)), np.eye(4)[:2], loss=1.0)["loss"] == 1.0
    assert m.accumulate(rng.random((3, 4)), np.eye(4)[:3], loss=np.array([2.0, 2.0, 5.0]))["loss"] == 3.0
    assert np.isnan(m.accumulate(rng.random((1, 4)), np.eye(4)[:1])["loss"])
    out = m.get()
    assert out["num_examples"] == 6
    assert out["loss"] == pytest.approx((2 * 1.0 + 9.0) / 5)  # 11 / 5 = 2.2
    m.clear()
    with pytest.raises(ValueError):
        m.get()
    m.accumulate(P3, L3, loss=tf.constant(4.0))
    assert m.get()["num_examples"] == 3 and m.get()["loss"] == 4.0


# ------------------------------------------------------------------------------- plain-loop reference


def ref_ap(ranked_labels, num_positives, n=None):
    """AP loop: ranked 0/1 labels, external positive count; optional AP@n (official ap_at_n)."""
    if num_positives == 0:
        return 0.0
    if n is not None:
        num_positives = min(num_positives, n)
        ranked_labels = ranked_labels[:n]
    ap, hits = 0.0, 0
    for i, lab in enumerate(ranked_labels):
        if lab > 0:
            hits += 1
            ap += hits / (i + 1) / num_positives
    return ap


def reference_metrics(pred, lab, k, top_n=None):
    num_videos, num_classes = pred.shape
    k = min(k, num_classes)
    triplets = []  # (class, score, label), videos in order
    for v in range(num_videos):
        best = sorted(range(num_classes), key=lambda c: (-pred[v, c], c))[:k]
        triplets.extend((c, pred[v, c], lab[v, c]) for c in best)
    total = int(lab.sum())
    ranked = sorted(triplets, key=lambda t: -t[1])  # stable
    gap = ref_ap([t[2] for t in ranked], total)
    aps = []
    for c in range(num_classes):
        pos = int(lab[:, c].sum())
        if pos == 0:
            continue
        entries = sorted([t for t in triplets if t[0] == c], key=lambda t: -t[1])
        aps.append(ref_ap([t[2] for t in entries], pos, top_n))
    hit = np.mean([float(lab[v, int(np.argmax(pred[v]))]) for v in range(num_videos)])
    perrs = []
    for v in range(num_videos):
        n = int(lab[v].sum())
        if n == 0:
            perrs.append(0.0)
            continue
        best = sorted(range(num_classes), key=lambda c: (-pred[v, c], c))[:n]
        perrs.append(sum(float(lab[v, c]) for c in best if pred[v, c] > 0) / n)
    return {"gap": gap, "map": float(np.mean(aps)), "hit_at_one": float(hit), "perr": float(np.mean(perrs))}


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(1234)
    pred = rng.random((500, 50))
    lab = (rng.random((500, 50)) < 0.1).astype(np.float32)
    lab[:5] = (rng.random((5, 50)) < 0.6).astype(np.float32)  # > k positives: PERR needs the deep ranking
    lab[5:10] = 0.0  # videos without positives
    pred[10:20] = 0.5 * pred[10:20] + 0.1 * lab[10:20]  # some correlation
    return pred, lab


@pytest.mark.parametrize("k,top_n", [(20, None), (5, None), (20, 7)])
def test_against_plain_loop_reference(random_data, k, top_n):
    pred, lab = random_data
    ref = reference_metrics(pred, lab, k, top_n)
    m = M.EvaluationMetrics(50, top_k=k, top_n=top_n)
    m.accumulate(pred, lab)
    out = m.get()
    for key in ref:
        assert out[key] == pytest.approx(ref[key], abs=1e-9), key
    if top_n is None:
        assert M.calculate_gap(pred, lab, top_k=k) == pytest.approx(ref["gap"], abs=1e-9)
        assert M.calculate_map(pred, lab, top_k=k) == pytest.approx(ref["map"], abs=1e-9)
    assert M.calculate_precision_at_equal_recall_rate(pred, lab) == pytest.approx(ref["perr"], abs=1e-9)
    assert M.calculate_hit_at_one(pred, lab) == pytest.approx(ref["hit_at_one"], abs=1e-12)


def test_streaming_equals_one_batch_and_storage_is_top_k_only(random_data):
    pred, lab = random_data
    whole = M.EvaluationMetrics(50, top_k=20)
    whole.accumulate(pred, lab, loss=np.arange(500.0))
    streamed = M.EvaluationMetrics(50, top_k=20)
    for start, stop in [(0, 7), (7, 200), (200, 201), (201, 500)]:
        streamed.accumulate(pred[start:stop], lab[start:stop], loss=np.arange(start, stop, dtype=float))
    assert streamed.get() == whole.get()
    assert streamed.get()["loss"] == pytest.approx(249.5)
    assert streamed._store.size == 500
    assert streamed._store.get("scores").shape == (500, 20)


def test_accumulate_top_k_path_equals_accumulate(random_data):
    pred, lab = random_data
    pred32, lab32 = pred.astype(np.float32), lab.astype(np.float32)
    direct = M.EvaluationMetrics(50, top_k=20)
    step = tf.function(lambda p, l: M.top_k_step_outputs(p, l, 20), jit_compile=True)
    via_step = M.EvaluationMetrics(50, top_k=20)
    derived = M.EvaluationMetrics(50, top_k=20)
    for start in range(0, 500, 128):
        p, l = pred32[start : start + 128], lab32[start : start + 128]
        direct.accumulate(p, l, loss=1.0)
        out = step(tf.constant(p), tf.constant(l))
        via_step.accumulate_top_k(**out, loss=tf.constant(1.0))
        # per-video class positives [B, C] and hit@1 derived from the top-k; rows with > k positives
        # make PERR underivable, so pass the step's PERR there.
        derived.accumulate_top_k(
            out["top_scores"], out["top_indices"], out["top_labels"], l, perr=out["perr"], loss=1.0
        )
    assert via_step.get() == direct.get()
    assert derived.get() == direct.get()

    small = M.EvaluationMetrics(50, top_k=20)
    few = lab32[20:60]  # 0.1 density: at most 20 positives per row here
    assert few.sum(axis=1).max() <= 20
    out = M.top_k_step_outputs(pred32[20:60], few, 20)
    small.accumulate_top_k(out["top_scores"], out["top_indices"], out["top_labels"], out["class_positives"],
                           num_positives=out["num_positives"])
    assert small.get()["perr"] == pytest.approx(float(np.mean(out["perr"])), abs=1e-12)


# ------------------------------------------------------------------------------------- segment level

# 5 segments x 3 classes. W = rated pairs, Y = ratings.
SEG_P = np.array(
    [
        [0.9, 0.1, 0.3],
        [0.8, 0.2, 0.3],
        [0.7, 0.3, 0.3],
        [0.6, 0.4, 0.3],
        [0.5, 0.5, 0.3],
    ]
)
SEG_W = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0], [0, 1, 1]])
SEG_Y = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]])
# class 0: ranked s0(.9,+) s1(unrated) s2(.7,-) s3(.6,+) s4(unrated); m_0 = 2
#   rated list + - +  -> AP = (1/1 + 2/3) / 2 = 5/6 ; K=3 keeps s0 s1 s2 -> rated + - -> AP = (1/1)/2 = 1/2
# class 1: ranked s4(.5,-) s3(unr) s2(unr) s1(.2,+) s0(.1,+); m_1 = 2
#   rated list - + +  -> AP = (1/2 + 2/3) / 2 = 7/12 ; K=3 keeps s4 s3 s2 -> rated - -> AP = 0
# class 2: one negative rating, m_2 = 0 -> left out.
# MAP@100000 = (5/6 + 7/12)/2 = 17/24 ; MAP@3 = (1/2 + 0)/2 = 1/4


def test_segment_map_hand_example():
    assert M.calculate_segment_map(SEG_P, SEG_Y, SEG_W) == pytest.approx(17 / 24)
    assert M.calculate_segment_map(SEG_P, SEG_Y, SEG_W, k=3) == pytest.approx(1 / 4)
    # segment_top_k=1: each segment keeps its best class; s4 ties .5/.5 -> class 0. Class 1 has no
    # candidate -> AP 0 and is averaged: (5/6 + 0)/2 = 5/12; only_predicted_classes drops it -> 5/6.
    assert M.calculate_segment_map(SEG_P, SEG_Y, SEG_W, segment_top_k=1) == pytest.approx(5 / 12)
    assert M.calculate_segment_map(
        SEG_P, SEG_Y, SEG_W, segment_top_k=1, only_predicted_classes=True
    ) == pytest.approx(5 / 6)
    # whitelist only class 1 -> 7/12
    assert M.calculate_segment_map(SEG_P, SEG_Y, SEG_W, class_mask=[False, True, True]) == pytest.approx(7 / 12)


def test_segment_map_from_submission_hand_example():
    ratings = {(f"s{i}", c): float(SEG_Y[i, c]) for i in range(5) for c in range(3) if SEG_W[i, c]}
    submission = {0: ["s0", "s1", "s2", "s3", "s4"], 1: ["s4", "s3", "s2", "s1", "s0"], 2: ["s0"]}
    assert M.calculate_segment_map_from_submission(submission, ratings) == pytest.approx(17 / 24)
    assert M.calculate_segment_map_from_submission(submission, ratings, k=3) == pytest.approx(1 / 4)


def test_segment_evaluation_metrics():
    seg = M.SegmentEvaluationMetrics(3, top_k=2)
    seg.accumulate(SEG_P[:2], SEG_Y[:2], SEG_W[:2], loss=1.0)
    seg.accumulate(SEG_P[2:], SEG_Y[2:], SEG_W[2:], loss=1.0)
    out = seg.get()
    assert out["segment_map"] == pytest.approx(17 / 24)
    # The video-level keys follow eval.py: predictions * label_weights through EvaluationMetrics.
    plain = M.EvaluationMetrics(3, top_k=2)
    plain.accumulate(SEG_P * SEG_W, SEG_Y, loss=1.0)
    expected = plain.get()
    assert {key: out[key] for key in expected} == expected


def ref_segment_aps(pred, lab, w, k):
    aps = np.full(pred.shape[1], np.nan)
    for c in range(pred.shape[1]):
        m = int(((w[:, c] > 0) & (lab[:, c] > 0)).sum())
        if m == 0:
            continue
        ranked = sorted(range(pred.shape[0]), key=lambda i: -pred[i, c])[:k]
        aps[c] = ref_ap([lab[i, c] for i in ranked if w[i, c] > 0], m)
    return aps


def ref_segment_map(pred, lab, w, k):
    return float(np.nanmean(ref_segment_aps(pred, lab, w, k)))


def test_segment_map_against_plain_loop_reference():
    rng = np.random.default_rng(7)
    pred = rng.random((300, 12))
    w = (rng.random((300, 12)) < 0.3).astype(np.float32)
    lab = w * (rng.random((300, 12)) < 0.4)
    for k in (100000, 50):
        ref = ref_segment_map(pred, lab, w, k)
        assert M.calculate_segment_map(pred, lab, w, k=k) == pytest.approx(ref, abs=1e-9)
    seg = M.SegmentEvaluationMetrics(12)
    for start in range(0, 300, 64):
        seg.accumulate(pred[start : start + 64], lab[start : start + 64], w[start : start + 64])
    assert seg.get()["segment_map"] == pytest.approx(ref_segment_map(pred, lab, w, 100000), abs=1e-9)
    # The per-class terms (eval.py --segment_labels --class_report), nan where a class has no positive.
    np.testing.assert_allclose(seg.class_average_precisions(), ref_segment_aps(pred, lab, w, 100000), atol=1e-9)
    np.testing.assert_array_equal(seg.class_positives, ((w > 0) & (lab > 0)).sum(0))
