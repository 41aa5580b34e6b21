"""Translate every way a fetch can fail into a CheckError, in one place."""

from __future__ import annotations

import socket
import ssl

import httpx

from app.schemas.results import CheckError, ErrorKind


class CheckFailure(Exception):
    """Raised inside a check for failures the engine itself detects (redirect rules)."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def classify(exc: BaseException) -> CheckError:
    """The error kind and a precise message for an exception raised during a check."""
    if isinstance(exc, CheckFailure):
        return CheckError(kind=exc.kind, message=exc.message)
    root = _root_cause(exc)
    if isinstance(exc, httpx.TimeoutException):
        phase = type(exc).__name__.removesuffix("Timeout").lower() or "request"
        return CheckError(kind=ErrorKind.TIMEOUT, message=f"timed out ({phase}): {exc}")
    if isinstance(root, ssl.SSLCertVerificationError):
        return CheckError(kind=ErrorKind.TLS, message=f"certificate: {root.verify_message}")
    if isinstance(root, ssl.SSLError):
        return CheckError(kind=ErrorKind.TLS, message=f"TLS: {root.reason or root}")
    if isinstance(exc, httpx.ConnectError):
        if isinstance(root, socket.gaierror):
            return CheckError(kind=ErrorKind.DNS, message=f"cannot resolve host: {root}")
        if isinstance(root, ConnectionRefusedError):
            return CheckError(kind=ErrorKind.CONNECT, message="connection refused")
        return CheckError(kind=ErrorKind.CONNECT, message=str(root) or str(exc))
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc)
        if "disconnected" in text.lower():
            return CheckError(kind=ErrorKind.CONNECTION_RESET, message=text)
        return CheckError(kind=ErrorKind.INVALID_RESPONSE, message=text)
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return CheckError(kind=ErrorKind.CONNECTION_RESET, message=str(root) or str(exc))
    if isinstance(exc, httpx.DecodingError):
        return CheckError(kind=ErrorKind.INVALID_RESPONSE, message=str(exc))
    return CheckError(kind=ErrorKind.INTERNAL, message=f"{type(exc).__name__}: {exc}")


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        nxt = current.__cause__ or current.__context__
        if nxt is None:
            break
        current = nxt
    return current
