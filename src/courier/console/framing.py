"""Who may frame the console: COURIER_CONSOLE_FRAME_ANCESTORS as the CSP frame-ancestors.

Console pages carry `frame-ancestors 'none'`. When the setting names sources, this
middleware rewrites that directive in every console response to name them instead, so a
platform can show the console in an iframe on its own pages. It is installed only then:
without the setting nothing changes.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_DIRECTIVE = b"frame-ancestors 'none'"
CONSOLE_PREFIX = "/console"


class FrameAncestorsMiddleware:
    def __init__(self, app: ASGIApp, sources: str) -> None:
        self.app = app
        self._directive = b"frame-ancestors " + sources.encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(CONSOLE_PREFIX):
            await self.app(scope, receive, send)
            return

        async def framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value.replace(DEFAULT_DIRECTIVE, self._directive))
                    if name.lower() == b"content-security-policy"
                    else (name, value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, framed)
