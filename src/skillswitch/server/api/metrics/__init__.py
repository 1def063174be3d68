"""``GET /metrics``: Prometheus collectors (one registry per app), the middleware that counts
every request, and the route."""
