"""Output folders that a command replaces as a whole (``fit intents``, ``fit tools``)."""

from __future__ import annotations

from pathlib import Path

from skillswitch.exceptions import DatasetError

__all__ = ["check_replaceable"]


def check_replaceable(out: Path, marker: str, command: str) -> None:
    """Refuse an ``out`` that the command would destroy by mistake: a file, or a folder with
    content that an earlier run of ``command`` did not write (no ``marker`` file in it). Checked
    before any work, so a long fit does not end in the error."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DatasetError(f"--out {out} is a file; give a folder for `{command}` to write")
    if any(out.iterdir()) and not (out / marker).is_file():
        raise DatasetError(
            f"--out {out} is a folder `{command}` did not write (no {marker}), and it would be "
            "replaced as a whole; give a new or empty folder"
        )
