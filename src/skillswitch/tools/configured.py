"""The ``ToolHub`` a config's ``tools.servers`` describe."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from skillswitch.config import environment
from skillswitch.config.models import MCPServerConfig
from skillswitch.exceptions import ConfigError
from skillswitch.redaction import register_secret, secret_looking
from skillswitch.tools.catalogue import ToolFilter
from skillswitch.tools.connection import ServerSettings, Target
from skillswitch.tools.hub import HubServer, ToolHub

__all__ = ["build_hub", "server_settings"]


def build_hub(servers: Sequence[MCPServerConfig], cache_dir: Path) -> ToolHub:
    """A hub for the configured servers; stdio servers' stderr goes to
    ``<cache_dir>/mcp/<server>.stderr.log``. Eager servers are listed before it returns."""
    hub = ToolHub(
        [
            HubServer(
                server_settings(server, index, cache_dir / "mcp"),
                ToolFilter(tuple(server.allow), tuple(server.deny)),
                tuple(server.skills),
            )
            for index, server in enumerate(servers)
        ]
    )
    eager = [server.name for server in servers if server.start == "eager"]
    if eager:
        hub.refresh_sync(eager)
    return hub


def server_settings(server: MCPServerConfig, index: int, log_dir: Path) -> ServerSettings:
    path = f"tools.servers[{index}]"
    target: Target
    headers = dict(server.headers)
    for name, value in [*headers.items(), *server.env.items()]:
        if secret_looking(name):
            register_secret(value)
    if server.command is not None:
        from mcp import StdioServerParameters

        program = _program(server.command[0])
        if program is None:
            raise ConfigError.single(
                f"{path}.command",
                f"program {server.command[0]!r} of MCP server {server.name!r} is not on PATH "
                "(nor next to this Python); install it or give its full path",
            )
        target = StdioServerParameters(
            command=program,
            args=list(server.command[1:]),
            env=dict(server.env) or None,
            cwd=server.cwd,
        )
    else:
        assert server.url is not None
        target = str(server.url)
        token = environment.api_key(server.bearer_token_env, path=f"{path}.bearer_token_env")
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
    return ServerSettings(
        name=server.name,
        target=target,
        headers=headers,
        mode=server.protocol,
        connect_timeout_s=server.connect_timeout_s,
        call_timeout_s=server.call_timeout_s,
        stderr_path=log_dir / f"{server.name}.stderr.log" if server.command is not None else None,
    )


def _program(name: str) -> str | None:
    """A program's path: as given, on PATH, or beside the running Python (a virtualenv's
    ``bin``, where console scripts such as ``skillswitch-builtin-tools`` live)."""
    if Path(name).is_file():
        return name
    found = shutil.which(name)
    if found is not None:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else None
