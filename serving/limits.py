"""Request size limit: a body larger than the limit gets 413 in the API's error shape.

A plain ASGI middleware. A declared ``Content-Length`` over the limit is refused before any byte
of the body is read; a body without one (chunked) is read up to the limit and refused as soon as
it passes it, so nothing much larger than the limit is ever held in memory. (FastAPI's own
``max_body_size`` answers a declared oversize in plain text, outside the error shape.)
"""

from __future__ import annotations

import json

DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024
"""128 MiB: a full batch of 10,000 orders sent with every feature at full float precision is
about 42 MiB with the history and duration features (about 100 of them; it was 25 MiB with 42:
measured in tests/reliability/test_security.py)."""


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413 ``too_large``."""

    def __init__(self, app, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None:
            # The server (h11) never passes more bytes than declared.
            if declared > self.max_bytes:
                await self._refuse(send)
            else:
                await self.app(scope, receive, send)
            return
        if not _has_chunked_body(scope):
            await self.app(scope, receive, send)
            return
        # No length given: read the body up to the limit, then replay it to the app.
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            messages.append(message)
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replay_receive():
            return next(replay, None) or await receive()

        await self.app(scope, replay_receive, send)

    async def _refuse(self, send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "too_large",
                    "message": "the request body is larger than the server's limit of "
                    f"{self.max_bytes:,} bytes; split the batch into smaller requests "
                    "(at most 10,000 orders each)",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_chunked_body(scope) -> bool:
    return any(
        name == b"transfer-encoding" and b"chunked" in value.lower()
        for name, value in scope.get("headers", ())
    )
