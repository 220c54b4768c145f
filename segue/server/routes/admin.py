"""``/api/v1`` routes for users, their tokens, and per-model grants.

Users and tokens need the admin role; a model's grants, a maintainer of that model (a
maintainer by grant counts). A grant gives at most maintainer: admin is a role of the whole
server. A new token is in the answer to its ``POST`` only; it is never shown again.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from starlette.responses import Response

from segue.auth.service import MAX_EXPIRES_IN, TOKEN_NAME_PATTERN, USER_NAME_PATTERN
from segue.errors import Unauthenticated

# The module, not its names: segue.server.app imports the routers while it loads.
from segue.server import app

router = APIRouter(tags=["users and tokens"])

UserName = Annotated[str, StringConstraints(pattern=USER_NAME_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]
TokenName = Annotated[str, StringConstraints(max_length=128, pattern=TOKEN_NAME_PATTERN)]
Role = Literal["viewer", "editor", "maintainer", "admin"]
GrantRole = Literal["viewer", "editor", "maintainer"]
#: At most about a hundred years; null: the token never expires.
ExpiresIn = Annotated[float, Field(gt=0, le=MAX_EXPIRES_IN, allow_inf_nan=False)]
#: Path parameters, in the shapes the service accepts (anything else: a 422 naming them).
UserParam = Annotated[str, Path(pattern=USER_NAME_PATTERN, description="A user name.")]
ModelParam = Annotated[
    str, Path(max_length=256, pattern=r"^[A-Za-z0-9][\w.\-]*$", description="A model.")
]
PublicId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{8}$", description="The token's public id (tokens list).")
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewUser(_Body):
    """A user to add (``POST /users``); the password is for the web UI, optional."""

    name: UserName
    role: Role
    password: Password | None = None


class UserChange(_Body):
    """What to change about a user (``PATCH /users/{user}``): any of the three (none: the
    user as they are)."""

    role: Role | None = None
    disabled: StrictBool | None = None
    password: Password | None = None


class NewToken(_Body):
    """A token to create (``POST /tokens``): ``expires_in`` seconds (null: never),
    ``scope`` ``predict`` for inference servers only."""

    user: UserName
    name: TokenName = "default"
    expires_in: ExpiresIn | None = None
    scope: Literal["predict"] | None = None


class GrantBody(_Body):
    """The role to give a user on one model (``PUT /models/{name}/grants/{user}``)."""

    role: GrantRole


def _actor(request: Request) -> str:
    return str(app.caller(request).actor)


# -- users ------------------------------------------------------------------------------------


@router.get("/users")
def list_users(request: Request) -> Response:
    """Every user, by name (roles, disabled or not, whether they have a password)."""
    return app.json_response(app.server_state(request).auth.list_users())


@router.post("/users", status_code=201)
def add_user(request: Request, body: NewUser) -> Response:
    """Add a user with a role (and optionally a password for the web UI)."""
    auth = app.server_state(request).auth
    user = auth.add_user(body.name, body.role, _actor(request), password=body.password)
    return app.json_response(user, 201)


@router.patch("/users/{user}")
def change_user(request: Request, user: UserParam, body: UserChange) -> Response:
    """Change a user's role, disable or enable them, or set their password."""
    auth, actor = app.server_state(request).auth, _actor(request)
    auth.get_user(user)  # NotFound before any change
    if body.password is not None:
        auth.set_password(user, body.password, actor)
    if body.role is not None:
        auth.set_role(user, body.role, actor)
    if body.disabled is not None:
        auth.set_disabled(user, body.disabled, actor)
    return app.json_response(auth.get_user(user))


# -- tokens -----------------------------------------------------------------------------------


@router.get("/tokens")
def list_tokens(
    request: Request,
    user: Annotated[
        str | None, Query(pattern=USER_NAME_PATTERN, description="Only this user's.")
    ] = None,
) -> Response:
    """Every token (of one user): public id, user, name, scope and dates; never the secret."""
    return app.json_response(app.server_state(request).auth.list_tokens(user))


@router.post("/tokens", status_code=201)
def create_token(request: Request, body: NewToken) -> Response:
    """Create a token: ``{"token": …, "api_token": …}``; the token is shown only here."""
    token, listed = app.server_state(request).auth.create_token(
        body.user, body.name, _actor(request), expires_in=body.expires_in, scope=body.scope
    )
    return app.json_response({"token": token, "api_token": listed}, 201)


class Introspection(_Body):
    """A token to check (``POST /token-introspection``)."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]


@router.post("/token-introspection")
def introspect_token(request: Request, body: Introspection) -> Response:
    """Whether a token is valid now: ``{"active": true, "user", "role", "scope"}`` or
    ``{"active": false}``.

    For inference servers (``segue serve --auth`` in remote mode) checking their clients'
    tokens with a token of their own: an inactive token is an answer, not a failed
    authentication of the caller, so a client sending bad tokens to an inference server
    does not use up that server's failure limit here.
    """
    try:
        principal = app.server_state(request).auth.authenticate(body.token)
    except Unauthenticated:
        return app.json_response({"active": False})
    return app.json_response(
        {"active": True, "user": principal.user, "role": principal.role, "scope": principal.scope}
    )


@router.delete("/tokens/{public_id}")
def revoke_token(request: Request, public_id: PublicId) -> Response:
    """Revoke a token by its public id: it fails from the next request on."""
    auth = app.server_state(request).auth
    return app.json_response(auth.revoke_token(public_id, _actor(request)))


# -- grants -----------------------------------------------------------------------------------


@router.get("/models/{name}/grants")
def list_grants(request: Request, name: ModelParam) -> Response:
    """The users with a grant on the model, and their role there."""
    return app.json_response(app.server_state(request).auth.list_grants(name))


@router.put("/models/{name}/grants/{user}")
def grant(request: Request, name: ModelParam, user: UserParam, body: GrantBody) -> Response:
    """Give a user a role on this model (viewer, editor or maintainer), replacing any grant."""
    auth = app.server_state(request).auth
    return app.json_response(auth.grant(name, user, body.role, _actor(request)))


@router.delete("/models/{name}/grants/{user}", status_code=204)
def revoke_grant(request: Request, name: ModelParam, user: UserParam) -> Response:
    """Take back a user's grant on this model."""
    app.server_state(request).auth.revoke_grant(name, user, _actor(request))
    return Response(status_code=204)
