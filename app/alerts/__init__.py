"""Alerts: rules that pick channels for a monitor's confirmed state changes, an outbox written
in the state change's own transaction, a delivery thread that sends it, and the channels'
senders (webhook, Slack, Discord, Teams, email). No FastAPI here."""
