"""``GET /v1/models``: protocol (bodies), serving (the logic), route."""
