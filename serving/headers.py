"""Security headers on every response: a plain ASGI middleware (like ``serving.metrics``).

- ``Content-Security-Policy``: the planner's page and everything else may load scripts, styles,
  images and data from this server only, and may not be framed; a route that needs another
  policy (the API docs: Swagger UI's inline start-up script, by its hash) sets its own header,
  which is kept.
- ``X-Frame-Options: DENY`` (older browsers' frame-ancestors), ``X-Content-Type-Options:
  nosniff``, ``Referrer-Policy: no-referrer`` (the page's URL never leaves with a request).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""What the planner's page needs (its script, its style sheet, the API) and nothing else."""

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", DEFAULT_CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """Adds ``HEADERS`` to each response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
