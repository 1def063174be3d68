"""Content fingerprints of model folders, memoised so start-up does not re-hash 90 MB."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

__all__ = ["folder_fingerprint"]

_HASHED_SUFFIXES = (".safetensors", ".bin", ".onnx", ".json", ".txt", ".model")


def folder_fingerprint(folder: Path, memo_file: Path | None = None) -> str:
    """sha256 over the names and contents of the model files in ``folder`` (hex, 16 chars).

    With ``memo_file``, digests are remembered per (path, size, mtime) so a warm start costs a
    few ``stat`` calls instead of hashing the weights again.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _HASHED_SUFFIXES)
    stamp = "|".join(
        f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files
    )
    key = f"{folder.resolve()}|{stamp}"
    memo = _read_memo(memo_file)
    if key in memo:
        return memo[key]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()[:16]
    if memo_file is not None:
        memo[key] = value
        _write_memo(memo_file, memo)
    return value


def _read_memo(memo_file: Path | None) -> dict[str, str]:
    if memo_file is None or not memo_file.exists():
        return {}
    try:
        data = json.loads(memo_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged memo only costs a re-hash
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_memo(memo_file: Path, memo: dict[str, str]) -> None:
    memo_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = memo_file.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(memo, indent=0), encoding="utf-8")
    with contextlib.suppress(OSError):
        temporary.replace(memo_file)
