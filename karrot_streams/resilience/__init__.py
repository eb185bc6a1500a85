"""Waiting out an outage: backoff delays and the one retry loop for a dependency that is down."""
