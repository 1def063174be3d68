"""``POST /v1/embeddings``: protocol (bodies), serving (the logic), route."""
