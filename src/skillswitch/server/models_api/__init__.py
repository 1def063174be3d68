"""The local inference backend as an OpenAI-compatible HTTP server (``skillswitch
serve-models``): one folder per endpoint (protocol, serving, route), services on ``app.state``.

Needs the ``local`` extra (torch, transformers) to serve; importing it loads neither.
"""

from skillswitch.server.models_api.app import create_models_app
from skillswitch.server.models_api.run import serve_models, with_models

__all__ = ["create_models_app", "serve_models", "with_models"]
