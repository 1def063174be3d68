"""The web playground at ``/``: a chat page that streams each answer from
``/v1/chat/completions`` and shows, beside it, the route it took (skills and scores, experts,
tool calls, aggregator, timings, cost). Static files shipped as package data (plain JavaScript,
no build step, nothing fetched from outside the server)."""
