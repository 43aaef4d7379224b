"""Security headers on every response, and a strict CSP on the pages (``/ui``, ``/swagger``)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# Only files from this server: no inline script or style, no other host, never framed.
PAGE_CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)
# Swagger UI's own stylesheet draws its icons as data: images.
SWAGGER_CSP = f"{PAGE_CSP}; img-src 'self' data:"
_PAGES = [("/ui", PAGE_CSP.encode()), ("/swagger", SWAGGER_CSP.encode())]


def _csp(path: str) -> bytes | None:
    for prefix, policy in _PAGES:
        if path == prefix or path.startswith(f"{prefix}/"):
            return policy
    return None


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(_HEADERS)
        if (policy := _csp(scope["path"])) is not None:
            headers.append((b"content-security-policy", policy))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
