"""The alert senders' figures, measured on this machine (not a timed test): 1,000
transitions (a shared dependency failing) batched per channel kind with the default
max_batch, sent to shape-checking receivers on loopback through the engine's HTTP layer.
Prints messages per kind, the wall and CPU time of sending them (receivers run in this
process, so their CPU counts too), and the pacing floor: messages x min_interval_s.

    .venv/bin/python bench/senders_figures.py [--alerts N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.alerts.channels import (
    ChannelConfig,
    DiscordChannel,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    batches,
    send,
)
from tests.alerts.build import burst
from tests.alerts.receivers import (
    Answer,
    discord_shape,
    slack_shape,
    start_receiver,
    teams_shape,
)
from tests.support.engine import make_http


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=1000)
    args = parser.parse_args()
    receiver = start_receiver()
    http = make_http()
    alerts = burst(args.alerts)
    try:
        urls = {
            "slack": receiver.shaped("/slack", slack_shape, Answer(200, "ok")),
            "discord": receiver.shaped("/discord", discord_shape, Answer(204)),
            "teams": receiver.shaped("/teams", teams_shape, Answer(202)),
            "webhook": receiver.script("/webhook"),
        }
        channels: list[ChannelConfig] = [
            SlackChannel(url=urls["slack"]),
            DiscordChannel(url=urls["discord"]),
            TeamsChannel(url=urls["teams"]),
            WebhookChannel(url=urls["webhook"], secret="s"),
        ]
        for channel in channels:
            wall, cpu = time.perf_counter(), time.process_time()
            outcomes = [send(channel, batch, http) for batch in batches(channel, alerts)]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            failed = [o for o in outcomes if not o.ok]
            floor = max(0, len(outcomes) - 1) * channel.min_interval_s
            print(
                f"{channel.kind:8} {len(outcomes):3} messages (max_batch {channel.max_batch}), "
                f"failed {len(failed)}, send wall {wall:.2f} s, cpu {cpu:.2f} s, "
                f"pacing floor {floor:.0f} s"
            )
    finally:
        http.close()
        receiver.server.stop()


if __name__ == "__main__":
    main()
