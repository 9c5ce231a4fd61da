"""The error envelope of the local Videos API: ``{"error": {"message", "type", "param", "code"}}``, and the
handlers that answer every exception of a route with it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """An HTTP error answer; ``message`` says what went wrong and what to do."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type
        self.headers = dict(headers or {})

    def response(self, *, detail: bool = False) -> JSONResponse:
        """The JSON response for this error; with ``detail`` FastAPI's ``{"detail": message}``."""
        body: dict[str, object] = {
            "error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        }
        if detail:
            body = {"detail": self.message}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def invalid(message: str, *, param: str | None = None, code: str = "invalid_value") -> ApiError:
    """A 400 for a request parameter that cannot be accepted."""
    return ApiError(400, message, code=code, param=param)


def _detail(request: Request) -> bool:
    return bool(getattr(request.app.state, "detail_errors", False))


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response(detail=_detail(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _detail(request):
        return JSONResponse({"detail": "Not Found" if exc.status_code == 404 else str(exc.detail)}, exc.status_code)
    if exc.status_code == 404:
        message = f"Unknown path {request.url.path!r}. The Videos API lives under /v1/videos (Azure: /openai/v1)."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path!r}."
    else:
        message = str(exc.detail)
    return ApiError(
        exc.status_code, message, code="not_found" if exc.status_code == 404 else "bad_request", headers=exc.headers
    ).response()


def exception_handlers() -> dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]:
    """Starlette's ``exception_handlers``: an ApiError as itself, a routing 404/405 in the same envelope."""
    return {ApiError: _api_error, HTTPException: _http_error}
