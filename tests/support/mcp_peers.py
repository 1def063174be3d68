"""Where the real MCP peers live (installed by `make mcp-peers`): third-party servers from PyPI
in their own venv, npm servers and the MCP Inspector CLI. Tests skip with the command to run
when a peer is missing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mcp import StdioServerParameters

REPO = Path(__file__).resolve().parents[2]
PYTHON_PEERS = REPO / ".venv-mcp-peers" / "bin"
NODE_PEERS = REPO / "tests" / "peers" / "node_modules" / ".bin"
FAULTY_SERVER = REPO / "tests" / "support" / "faulty_mcp_server.py"


def peer(name: str) -> Path:
    """The executable of a peer, or a skip naming the command that installs it."""
    for folder in (PYTHON_PEERS, NODE_PEERS):
        path = folder / name
        if path.exists():
            return path
    pytest.skip(f"MCP peer {name!r} is not installed; run `make mcp-peers`")


def stdio(name: str, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=str(peer(name)), args=list(args), env=env)


def faulty_server() -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(FAULTY_SERVER)])


def children_running(marker: str) -> list[int]:
    """PIDs of this process's children whose command line contains ``marker`` (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and marker in cmdline:
            found.append(int(entry.name))
    return found
