"""``POST /v1/completions``: protocol (bodies), serving (the logic), route."""
