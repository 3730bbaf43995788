"""Serving a paid request: billing (hold, capture, void, usage event), upstream calls with failover."""
