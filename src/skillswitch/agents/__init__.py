"""Experts that answer requests (the ``Expert`` protocol, OpenAI-compatible and local experts,
MCP-tool experts, the aggregator and the dispatcher). Built on the router's decisions; see the
issue "Experts, Symbolic-MoE recruitment, dispatch and aggregation"."""
