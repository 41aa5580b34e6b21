"""Receivers for the alert senders' tests, on loopback: one HTTP server that records every
request (raw body and headers) and answers from a script per path, and checkers of the
payload shapes Slack, Discord and Teams accept (a receiver answers 400 to a bad shape, as
those services do)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import ThreadedUvicorn


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


Shape = Callable[[Any], list[str]]


class Receiver:
    """Records requests; answers each path from its script (then from its default)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._defaults: dict[str, Answer] = {}
        self._shapes: dict[str, Shape] = {}
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self.server = ThreadedUvicorn(self.app)

    @property
    def url(self) -> str:
        return self.server.url

    def reset(self) -> None:
        with self._lock:
            self._received.clear()
            self._scripts.clear()
            self._defaults.clear()
            self._shapes.clear()

    def script(self, path: str, *answers: Answer, default: Answer | None = None) -> str:
        """Answer `path` with `answers` in turn, then `default` (200); returns its URL."""
        with self._lock:
            self._scripts[path] = list(answers)
            if default is not None:
                self._defaults[path] = default
        return f"{self.url}{path}"

    def shaped(self, path: str, shape: Shape, accepted: Answer) -> str:
        """Check each body's shape: 400 with the problems, else `accepted`."""
        with self._lock:
            self._shapes[path] = shape
            self._defaults[path] = accepted
        return f"{self.url}{path}"

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        got = Received(path, {k.lower(): v for k, v in request.headers.items()}, body)
        with self._lock:
            self._received.append(got)
            script = self._scripts.get(path)
            answer = script.pop(0) if script else self._defaults.get(path, Answer(200, "ok"))
            shape = self._shapes.get(path)
        if shape is not None:
            try:
                problems = shape(json.loads(body))
            except ValueError as exc:
                problems = [f"not JSON: {exc}"]
            if problems:
                return Response("; ".join(problems), status_code=400)
        return Response(answer.body, status_code=answer.status, headers=answer.headers)


# --- the shapes the services accept ----------------------------------------------------------


def slack_shape(doc: Any) -> list[str]:
    problems: list[str] = []
    if set(doc) - {"text", "blocks"}:
        problems.append(f"unexpected fields {sorted(set(doc) - {'text', 'blocks'})}")
    text = doc.get("text")
    if not isinstance(text, str) or not text or len(text) > 40_000:
        problems.append("text: 1-40000 characters")
    blocks = doc.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        problems.append("blocks: at most 50")
        return problems
    for block in blocks:
        kind = block.get("type")
        inner = block.get("text", {})
        if kind == "header":
            if inner.get("type") != "plain_text" or not 0 < len(inner.get("text", "")) <= 150:
                problems.append("header: plain_text of 1-150 characters")
        elif kind == "section":
            if inner.get("type") != "mrkdwn" or not 0 < len(inner.get("text", "")) <= 3000:
                problems.append("section: mrkdwn of 1-3000 characters")
        else:
            problems.append(f"block type {kind!r}")
    return problems


def discord_shape(doc: Any) -> list[str]:
    problems: list[str] = []
    content = doc.get("content", "")
    embeds = doc.get("embeds", [])
    if not content and not embeds:
        problems.append("content or embeds required")
    if not isinstance(content, str) or len(content) > 2000:
        problems.append("content: at most 2000 characters")
    if not isinstance(embeds, list) or len(embeds) > 10:
        problems.append("embeds: at most 10")
        return problems
    total = 0
    for embed in embeds:
        description = embed.get("description", "")
        total += len(description) + len(embed.get("title", ""))
        if len(description) > 4096:
            problems.append("embed description: at most 4096 characters")
        if not isinstance(embed.get("color", 0), int) or not 0 <= embed.get("color", 0) <= 0xFFFFFF:
            problems.append("embed color: an RGB integer")
    if total > 6000:
        problems.append("embeds: at most 6000 characters together")
    return problems


ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def teams_shape(doc: Any) -> list[str]:
    problems: list[str] = []
    if len(json.dumps(doc).encode()) > 28 * 1024:
        problems.append("message over 28 KB")
    if doc.get("type") != "message":
        problems.append('type must be "message"')
    attachments = doc.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return [*problems, "one attachment expected"]
    attachment = attachments[0]
    if attachment.get("contentType") != ADAPTIVE:
        problems.append(f"contentType must be {ADAPTIVE}")
    card = attachment.get("content", {})
    if card.get("type") != "AdaptiveCard":
        problems.append('content.type must be "AdaptiveCard"')
    if card.get("version") not in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"):
        problems.append("content.version: 1.0-1.5")
    if not str(card.get("$schema", "")).startswith("http://adaptivecards.io/schemas/"):
        problems.append("content.$schema missing")
    body = card.get("body")
    if not isinstance(body, list) or not body:
        return [*problems, "content.body: a non-empty list"]
    for element in body:
        problems += _element_problems(element)
    return problems


def _element_problems(element: Any) -> list[str]:
    kind = element.get("type")
    if kind == "TextBlock":
        return (
            [] if isinstance(element.get("text"), str) and element["text"] else ["TextBlock.text"]
        )
    if kind == "FactSet":
        facts = element.get("facts", [])
        good = all(
            isinstance(f.get("title"), str) and isinstance(f.get("value"), str) for f in facts
        )
        return [] if facts and good else ["FactSet.facts: title/value strings"]
    if kind == "Container":
        items = element.get("items")
        if not isinstance(items, list) or not items:
            return ["Container.items"]
        return [p for item in items for p in _element_problems(item)]
    return [f"element type {kind!r}"]


def start_receiver() -> Receiver:
    receiver = Receiver()
    receiver.server.start()
    return receiver
