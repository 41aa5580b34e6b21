"""Prometheus metrics: the service's own (through prometheus_client) and one family set per
monitor rendered straight from the store (app/metrics/monitors.py), plus blackbox_exporter's
`/probe` answer. FastAPI-free: app/api/routes/metrics.py serves them."""
