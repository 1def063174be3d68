"""The MCP client side: upstream server connections, the tool catalogue with namespacing, tool
retrieval, and the builtin tools of the default config (see the MCP issue)."""
