"""The signed-URL CDN origin of the ``cdn-redirect`` dialect: a second port whose URLs expire.

The content route answers 302 to :meth:`CdnOrigin.signed_url`; a GET there is checked the way an object store
checks a presigned URL (an HMAC of key, variant and expiry; no auth header may come along) and its errors are
S3-style XML, as real CDNs send them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sora_nb.server import params
from sora_nb.server.config import ServerConfig
from sora_nb.server.errors import ApiError, exception_handlers
from sora_nb.server.records import ASSETS
from sora_nb.server.serving import AssetServer
from sora_nb.server.store import Store, safe_key


class CdnOrigin:
    """Signs download URLs and serves them (ASGI app: ``app``); ``port`` is set once the second port is bound.

    ``rejected_headers`` lists the auth headers that reached the origin (a client must strip them on the hop).
    """

    def __init__(self, config: ServerConfig, store: Store, assets: AssetServer) -> None:
        self.config, self.store, self.assets = config, store, assets
        self.port: int | None = None
        self.rejected_headers: list[str] = []
        self._secret = secrets.token_bytes(32)
        self.app = Starlette(
            routes=[Route("/cdn/{key}/{variant}", self._get, methods=["GET", "HEAD"])],
            exception_handlers=exception_handlers(),
        )

    def _sign(self, key: str, variant: str, expires: int) -> str:
        message = f"{key}/{variant}/{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def signed_url(self, origin: str, job_id: str, variant: str) -> str:
        """A URL at ``origin`` (this origin as clients reach it) for ``variant`` of a job, valid for ``cdn_ttl``."""
        key, expires = safe_key(job_id), int(time.time() + self.config.cdn_ttl)
        return f"{origin}/cdn/{key}/{variant}?expires={expires}&sig={self._sign(key, variant, expires)}"

    async def _get(self, request: Request) -> Response:
        key, variant = request.path_params["key"], request.path_params["variant"]
        leaked = [name for name in ("authorization", "api-key") if name in request.headers]
        if leaked:
            self.rejected_headers.extend(leaked)
            return _xml_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                "query parameter, Signature query string parameter or the Authorization header "
                "should be specified",
            )
        try:
            expires = params.whole_number(request.query_params.get("expires", ""), "expires", maximum=2**63 - 1)
        except ApiError as exc:
            return _xml_error(exc.status, "AuthorizationQueryParametersError", exc.message)
        sig = request.query_params.get("sig", "")
        if variant not in ASSETS or not hmac.compare_digest(sig.encode(), self._sign(key, variant, expires).encode()):
            return _xml_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if expires < time.time():
            return _xml_error(403, "AccessDenied", "Request has expired")
        job = next((j for j in self.store.jobs() if safe_key(j.id) == key), None)
        if job is None:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        return await self.assets.serve(request, job, variant)


def _xml_error(status: int, code: str, message: str) -> Response:
    text = escape(message)  # it may quote a caller's query parameter
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{text}</Message></Error>'
    return Response(body, status_code=status, media_type="application/xml")
