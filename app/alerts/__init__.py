"""Alerts: telling people when a monitor goes down, degrades or recovers (issue 10)."""
