"""Promotion requests through ``segue server``: :class:`RestPromotions`.

The same calls as :class:`segue.registry.promotions.Promotions`, over
``/api/v1/models/{name}/requests`` and ``/api/v1/models/{name}/policy``. It stands in for the
service rather than for its store because the server must do the deciding itself: it judges
the gates, checks that the approver is not the proposer, and moves the alias acting as its
authenticated user, where a model's policy refuses every other move. The client sends only
what a person says (the version, the alias, the reason, the comment).

Example:
    >>> promotions = RestPromotions(RemoteSession("http://127.0.0.1:5000", token="sgt_…"))
    >>> promotions.propose("churn", 5, "champion", "better recall in March").status
    'pending'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from segue.remote.http import RemoteSession
from segue.store import codec
from segue.store.entities import ModelPolicy, PromotionRequest
from segue.store.registry import check_model_name

__all__ = ["RestPromotions"]


class RestPromotions:
    """Propose, approve and reject alias moves on a ``segue server``, as its token's user.

    Args:
        session: the connection to the server.
    """

    def __init__(self, session: RemoteSession) -> None:
        self.session = session

    def propose(self, name: str, version: int, alias: str, reason: str) -> PromotionRequest:
        body = {"version": version, "alias": alias, "reason": reason}
        return self._request(self.session.call("POST", f"{_model(name)}/requests", json=body))

    def approve(self, request_id: int, comment: str | None = None) -> PromotionRequest:
        return self._decide(request_id, "approve", comment)

    def reject(self, request_id: int, comment: str) -> PromotionRequest:
        return self._decide(request_id, "reject", comment)

    def get(self, request_id: int) -> PromotionRequest:
        return self._request(self.session.call("GET", f"/requests/{int(request_id)}"))

    def list(
        self, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[PromotionRequest]:
        params: dict[str, Any] = {"limit": limit}
        if model is not None:
            params["model"] = model
        if status is not None:
            params["status"] = status
        found = self.session.call("GET", "/requests", params=params)
        return [codec.load(PromotionRequest, r) for r in found]

    def policy(self, name: str) -> ModelPolicy:
        return codec.load(ModelPolicy, self.session.call("GET", f"{_model(name)}/policy"))

    def set_policy(self, name: str, require_approval: bool) -> ModelPolicy:
        body = {"require_approval": require_approval}
        found = self.session.call("PUT", f"{_model(name)}/policy", json=body)
        return codec.load(ModelPolicy, found)

    def _decide(self, request_id: int, verb: str, comment: str | None) -> PromotionRequest:
        # The route names the model, so that a grant on it decides who may approve.
        model = self.get(request_id).model_name
        path = f"{_model(model)}/requests/{int(request_id)}/{verb}"
        return self._request(self.session.call("POST", path, json={"comment": comment}))

    @staticmethod
    def _request(data: Any) -> PromotionRequest:
        return codec.load(PromotionRequest, data)


def _model(name: str) -> str:
    return f"/models/{quote(check_model_name(name), safe='')}"
