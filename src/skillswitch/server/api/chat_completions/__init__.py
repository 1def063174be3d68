"""``POST /v1/chat/completions``: protocol (bodies), serving (the logic), route."""
