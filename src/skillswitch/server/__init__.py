"""skillswitch's own servers: the MCP server (``mcp.py``); the HTTP app mounts it at ``/mcp``."""
