"""Reading an answer: where a redirect points, and a body bounded by the read cap."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import httpx

from app.engine.failures import CheckFailure
from app.schemas.results import ErrorKind, RedirectHop


def next_hop(
    response: httpx.Response, hops: list[RedirectHop], visited: set[str], limit: int
) -> httpx.URL:
    location = response.headers.get("Location")
    here = str(response.url)
    if not location:
        raise CheckFailure(ErrorKind.INVALID_REDIRECT, f"{response.status_code} without Location")
    try:
        target = response.url.join(location)
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise CheckFailure(ErrorKind.INVALID_REDIRECT, f"bad Location {location!r}: {exc}") from exc
    if target.scheme not in ("http", "https") or not target.host:
        raise CheckFailure(ErrorKind.INVALID_REDIRECT, f"Location {location!r} is not http(s)")
    hops.append(RedirectHop(url=here, status_code=response.status_code, location=str(target)))
    if str(target) in visited:
        raise CheckFailure(ErrorKind.REDIRECT_LOOP, f"{here} redirects back to {target}")
    if len(hops) > limit:
        raise CheckFailure(ErrorKind.TOO_MANY_REDIRECTS, f"more than {limit} redirects")
    visited.add(str(target))
    return target


REDIRECT_BODY_LIMIT = 16_384


def drain_small(response: httpx.Response) -> None:
    """Read a redirect's body if it is small, so its connection stays usable for the next
    hop; a large one is left unread and its connection dropped on close."""
    read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > REDIRECT_BODY_LIMIT:
            return


@dataclass(frozen=True, slots=True)
class Body:
    bytes_read: int  # raw bytes, at most the cap
    truncated: bool  # the raw body went on past the cap
    kept: bytes | None  # what assertions see (decoded), when asked for
    cut: bool  # `kept` is incomplete: the raw or the decoded body went past the cap


def read_body(response: httpx.Response, cap: int, keep: bool) -> Body:
    """Read the raw (still compressed) body up to `cap` bytes: a gzip bomb costs at most that.
    With `keep`, also return it, a Content-Encoding undone up to the cap."""
    read = 0
    truncated = False
    kept: list[bytes] = []
    for chunk in response.iter_raw():
        read += len(chunk)
        if keep:
            kept.append(chunk)
        if read > cap:
            truncated = True
            read = cap
            break
    if not keep:
        return Body(read, truncated, None, truncated)
    body = b"".join(kept)[:cap]
    cut = truncated
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in _ZLIB_WBITS:
        body, decoded_cut = _decoded(body, encoding, cap)
        cut = cut or decoded_cut
    return Body(read, truncated, body, cut)


# gzip and zlib-wrapped deflate; raw deflate is what some servers send as "deflate".
_ZLIB_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 47}


def _decoded(body: bytes, encoding: str, cap: int) -> tuple[bytes, bool]:
    """Undo a Content-Encoding for the assertions, producing at most `cap` bytes, so a
    compression bomb costs no more than the cap (we ask for identity; not all servers obey).
    Also says whether the decoded body went on past the cap."""
    for wbits in (_ZLIB_WBITS[encoding], -15):
        decoder = zlib.decompressobj(wbits)
        try:
            decoded = decoder.decompress(body, cap)
        except zlib.error:
            continue
        return decoded, bool(decoder.unconsumed_tail)
    return body, False
