"""Routing: judging a request, ranking deployments by strategy and live health, and offline evaluation."""
