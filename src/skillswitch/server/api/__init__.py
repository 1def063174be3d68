"""skillswitch's OpenAI-compatible HTTP API (``skillswitch serve``): chat completions routed by
skill, the routing decision alone, the models (automatic routing, one per skill, one per
expert), health and Prometheus metrics. One folder per endpoint (protocol, serving, route);
``create_app(switch)`` builds the services onto ``app.state``.

>>> app = create_app(Switch.from_config("config.yaml"))  # doctest: +SKIP
>>> uvicorn.run(app, port=8000)  # doctest: +SKIP
"""

from skillswitch.server.api.app import DEFAULT_MAX_BODY_BYTES, create_app

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]
