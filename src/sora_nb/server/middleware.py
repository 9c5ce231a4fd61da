"""What every request meets before the routes, and what every answer carries.

:class:`Gate` answers in the routes' place where a request may not pass: a missing or wrong key (in the form
the dialect expects), Azure's missing ``api-version``, an injected 429 or 5xx. :func:`tagged` adds a request
ID and the local-preview mark to every response, the CDN origin's included.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sora_nb.server.dialects import Dialect
from sora_nb.server.errors import ApiError
from sora_nb.server.faults import Faults

PREVIEW_HEADER = ("x-sora-nb-server", "local-preview")
_HOW = {
    "api-key": "an `api-key: <key>` header",
    "bearer": "`Authorization: Bearer <key>`",
    "bearer-or-raw": "`Authorization: <key>` or `Authorization: Bearer <key>`",
    "any-bearer": "`Authorization: Bearer <any token>`",
    "none": "nothing",
}


def tagged(send: Send, *, preview: bool = True) -> Send:
    """``send`` that adds ``x-request-id`` (fresh for each request) and, with ``preview``, the local-preview
    header to the answer (a relay's videos come from its upstream, so it leaves that out)."""
    request_id = "req_" + secrets.token_hex(12)

    async def tagged_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"x-request-id" for name, _ in headers):  # vLLM's /sync sets its own
                headers.append((b"x-request-id", request_id.encode()))
            if preview:
                headers.append((PREVIEW_HEADER[0].encode(), PREVIEW_HEADER[1].encode()))
            message = {**message, "headers": headers}
        await send(message)

    return tagged_send


class Gate:
    """ASGI middleware in front of the API's routes: auth, api-version, injected 429/5xx."""

    def __init__(self, app: ASGIApp, *, key: str, dialect: Dialect, faults: Faults) -> None:
        self.app, self.key, self.dialect, self.faults = app, key, dialect, faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        denial = self.denial(Request(scope))
        if denial is not None:
            await denial(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def authorized(self, request: Request) -> bool:
        """Whether ``request`` carries the key the way the dialect takes it."""
        key, d = self.key, self.dialect
        if not d.needs_key(request.url.path):
            return True
        if d.auth == "any-bearer":  # FastAPI's HTTPBearer with no keys configured: any token, but one
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            return scheme.lower() == "bearer" and bool(token.strip())
        if any(hmac.compare_digest(request.headers.get(h, "").encode(), key.encode()) for h in d.key_headers):
            return True
        if self.dialect.auth == "api-key":
            given = request.headers.get("api-key", "")
            return hmac.compare_digest(given.encode(), key.encode())
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
            return True
        return self.dialect.auth == "bearer-or-raw" and hmac.compare_digest(header.strip().encode(), key.encode())

    def denial(self, request: Request) -> Response | None:
        """The answer that stops ``request`` here, or None to let it through to the routes."""
        if not self.authorized(request):
            if self.dialect.auth == "any-bearer":
                return ApiError(403, "Not authenticated", code="not_authenticated").response(detail=True)
            return ApiError(
                401,
                f"Missing or incorrect API key. Send it as {_HOW[self.dialect.auth]}: the key `sora-nb serve` printed "
                "when it started, or the one it was given with --key.",
                code="invalid_api_key",
            ).response(detail=self.dialect.errors == "detail")
        if self.dialect.requires_api_version and not request.query_params.get("api-version"):
            return ApiError(
                400,
                "Missing required query parameter 'api-version' (e.g. ?api-version=preview).",
                code="missing_api_version",
                param="api-version",
            ).response()
        if self.faults.rate_limited():
            return ApiError(
                429,
                f"Rate limit reached (injected fault); retry after {self.faults.retry_after} s.",
                code="rate_limit_exceeded",
                type="rate_limit_error",
                headers={"retry-after": str(self.faults.retry_after)},
            ).response()
        status = self.faults.server_error(request.method)
        if status is not None:
            return ApiError(
                status,
                "The server had an error (injected fault); retry the request.",
                code="server_error",
                type="server_error",
            ).response()
        return None
