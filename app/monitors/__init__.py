"""Monitors: URLs checked on a schedule, their states, history and uptime (no FastAPI here)."""
