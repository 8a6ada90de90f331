"""OpenAI-style error responses: `{"error": {"message", "type", "param", "code"}}` with the right status."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import JSONResponse


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers

    def body(self) -> dict:
        return {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.body()}, status_code=self.status, headers=self.headers)


def from_validation_error(err: ValidationError) -> APIError:
    """The first pydantic error, phrased for a person: which parameter, what is wrong."""
    first = err.errors()[0]
    param = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return APIError(
            400, f"parameter '{param}' is not supported by this server", param=param, code="unsupported_parameter"
        )
    if first["type"] == "missing":
        return APIError(400, f"parameter '{param}' is required", param=param, code="missing_parameter")
    return APIError(400, f"invalid value for '{param}': {first['msg']}", param=param, code="invalid_value")
