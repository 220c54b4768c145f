"""Users, tokens and grants through ``segue server`` (``/users``, ``/tokens``, ``.../grants``).

:class:`RestAuthAdmin` offers the administration methods of
:class:`~segue.auth.service.AuthService` with the same signatures, so the CLI manages a team
the same way whether it opens the store or works through a server. Through a server, the
audit records the token's user, not the ``actor`` a client passes (which is ignored).

Example:
    >>> admin = RestAuthAdmin(RemoteSession("http://127.0.0.1:5000", token="sgt_…"))
    >>> admin.add_user("bob", "editor", actor="ignored").role
    'editor'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from segue.auth import secrets
from segue.remote.http import RemoteSession
from segue.store import codec
from segue.store.entities import ApiToken, ModelGrant, User

__all__ = ["RestAuthAdmin"]


def _segment(text: str) -> str:
    return quote(text, safe="")


class RestAuthAdmin:
    """User, token and grant administration over a :class:`RemoteSession`."""

    def __init__(self, session: RemoteSession) -> None:
        self.session = session

    # -- users -----------------------------------------------------------------------------

    def add_user(self, name: str, role: str, actor: str, password: str | None = None) -> User:
        body: dict[str, Any] = {"name": name, "role": role}
        if password is not None:
            body["password"] = password
        return codec.load(User, self.session.call("POST", "/users", json=body))

    def list_users(self) -> list[User]:
        return codec.load(list[User], self.session.call("GET", "/users"))

    def _change(self, name: str, body: dict[str, Any]) -> User:
        return codec.load(User, self.session.call("PATCH", f"/users/{_segment(name)}", json=body))

    def set_role(self, name: str, role: str, actor: str) -> User:
        return self._change(name, {"role": role})

    def set_disabled(self, name: str, disabled: bool, actor: str) -> User:
        return self._change(name, {"disabled": disabled})

    def set_password(self, name: str, password: str, actor: str) -> None:
        self._change(name, {"password": password})

    # -- tokens ----------------------------------------------------------------------------

    def create_token(
        self,
        user: str,
        name: str,
        actor: str,
        expires_in: float | None = None,
        scope: str | None = None,
    ) -> tuple[str, ApiToken]:
        body = {"user": user, "name": name, "expires_in": expires_in, "scope": scope}
        answer = self.session.call("POST", "/tokens", json=body)
        return str(answer["token"]), codec.load(ApiToken, answer["api_token"])

    def list_tokens(self, user: str | None = None) -> list[ApiToken]:
        params = None if user is None else {"user": user}
        return codec.load(list[ApiToken], self.session.call("GET", "/tokens", params=params))

    def revoke_token(self, public_id: str, actor: str) -> ApiToken:
        if public_id.startswith(secrets.PREFIX):  # the token itself: never send it in a URL
            public_id = secrets.parse_token(public_id)
        answer = self.session.call("DELETE", f"/tokens/{_segment(public_id)}")
        return codec.load(ApiToken, answer)

    # -- grants ----------------------------------------------------------------------------

    def grant(self, model: str, user: str, role: str, actor: str) -> ModelGrant:
        path = f"/models/{_segment(model)}/grants/{_segment(user)}"
        return codec.load(ModelGrant, self.session.call("PUT", path, json={"role": role}))

    def revoke_grant(self, model: str, user: str, actor: str) -> None:
        self.session.call("DELETE", f"/models/{_segment(model)}/grants/{_segment(user)}")

    def list_grants(self, model: str) -> list[ModelGrant]:
        path = f"/models/{_segment(model)}/grants"
        return codec.load(list[ModelGrant], self.session.call("GET", path))
