"""``GET /healthz``: open without the API key, for probes."""
