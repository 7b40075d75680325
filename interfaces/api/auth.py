"""Bearer-token checks: the API's routes take the token as `Authorization: Bearer`, the docs
also as HTTP Basic (any user, the token as password), because browsers ask for that."""

import secrets
from base64 import b64decode
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from interfaces.api.errors import Unauthorized


def token_ok(request: Request, token: str, *, basic: bool = False) -> bool:
    """Whether the request carries `token` (compared in constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip()
    if basic and scheme.lower() == "basic":
        try:
            given = b64decode(given, validate=True).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return secrets.compare_digest(given.encode(), token.encode())


def auth_dependencies(token: str | None) -> tuple[list[Any], list[Any]]:
    """Route dependencies `(api, docs)`: none for the API without a token."""
    bearer = HTTPBearer(auto_error=False, description="BRUSHEDIT_API_TOKEN of the server.")

    def require_token(request: Request, _: Any = Depends(bearer)) -> None:
        if token and not token_ok(request, token):
            raise Unauthorized

    def require_docs_token(request: Request) -> None:
        """The docs also take HTTP Basic (any user, the token as password): browsers ask."""
        if token and not token_ok(request, token, basic=True):
            raise Unauthorized(basic=True)

    return ([Depends(require_token)] if token else []), [Depends(require_docs_token)]
