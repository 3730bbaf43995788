"""Metrics (Prometheus, at GET /metrics) and traces (OpenTelemetry) of the serving pipeline.

Everything here is owned by one app (no global registry or tracer provider), so tests can build many.
"""
