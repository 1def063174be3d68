"""``GET /healthz``: the backend's device, resident models and queues."""
