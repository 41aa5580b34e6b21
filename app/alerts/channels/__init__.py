"""Where alerts go, and sending them there: webhook, Slack, Discord, Teams and e-mail.

No database and no FastAPI here: given a channel's configuration and a batch of alerts,
`send` delivers them once and says precisely what happened (`SendOutcome`); retries,
pacing and records are the delivery thread's.
"""

from app.alerts.channels.config import (
    CHANNEL_ADAPTER,
    OPERATOR_CHANNEL_ADAPTER,
    AppriseChannel,
    ChannelConfig,
    DiscordChannel,
    EmailChannel,
    OperatorChannelConfig,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    mask_url,
    parse_channel,
    parse_operator_channel,
)
from app.alerts.channels.outcome import SendOutcome
from app.alerts.channels.sender import batches, send, validate_destination

__all__ = [
    "CHANNEL_ADAPTER",
    "OPERATOR_CHANNEL_ADAPTER",
    "AppriseChannel",
    "ChannelConfig",
    "DiscordChannel",
    "EmailChannel",
    "OperatorChannelConfig",
    "SendOutcome",
    "SlackChannel",
    "TeamsChannel",
    "WebhookChannel",
    "batches",
    "mask_url",
    "parse_channel",
    "parse_operator_channel",
    "send",
    "validate_destination",
]
