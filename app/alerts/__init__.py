"""Alerts: rules that pick channels for a monitor's confirmed state changes, an outbox written
in the state change's own transaction, and a delivery thread that sends it (no FastAPI)."""
