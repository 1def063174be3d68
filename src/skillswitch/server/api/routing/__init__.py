"""``POST /v1/route``: the routing decision alone (protocol, serving, route)."""
