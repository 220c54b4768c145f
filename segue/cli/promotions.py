"""``segue models propose``, ``segue models requests …`` and ``segue models policy``:
alias moves that someone other than their proposer approves.

Embedded, the commands act as the local user (``local:<login>``); with
``SEGUE_TRACKING_URI`` they go through the server, which acts as the token's user and decides
there (gates, who may approve, the move itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, number, print_json, print_table, when
from segue.errors import GateFailed, InvalidArgument

if TYPE_CHECKING:
    from segue.registry.promotions import PromotionService
    from segue.store.entities import PromotionRequest

requests_app = typer.Typer(
    help="Promotion requests: proposed alias moves waiting for a maintainer's decision.",
    epilog="Example: segue models requests list --status pending",
    no_args_is_help=True,
)


def register(models: typer.Typer) -> None:
    """Add the promotion commands to ``segue models``."""
    models.add_typer(requests_app, name="requests")
    models.command(
        "propose",
        epilog='Example: segue models propose churn/5 --alias champion --reason "recall +4%"',
    )(propose)
    models.command(
        "policy",
        epilog="Example: segue models policy churn --require-approval",
    )(policy)


def _service() -> PromotionService:
    from segue.config import settings

    config = settings()
    if config.tracking_uri is not None:
        from segue.remote.http import RemoteSession
        from segue.remote.promotions import RestPromotions

        return RestPromotions(RemoteSession(config.tracking_uri, config.token))
    from segue.identity import local_actor
    from segue.registry.promotions import Promotions
    from segue.registry.service import get_registry
    from segue.store.promotions import SqlPromotionStore

    # The edge says who acts; the service records it on the request and in the audit log.
    registry = get_registry(local_actor())
    return Promotions(SqlPromotionStore(registry.store.engine), registry)  # type: ignore[attr-defined]


def _name_and_version(ref: str) -> tuple[str, int]:
    from segue.models.uri import parse_model_uri, resolve_model_uri

    refusal = f"{ref!r}: propose a version as NAME/VERSION, e.g. churn/5"
    try:
        parsed = parse_model_uri(resolve_model_uri(ref, accept=("models",), refusal=refusal))
    except InvalidArgument:
        raise InvalidArgument(refusal) from None
    if parsed.name is None or parsed.version is None:
        raise InvalidArgument(refusal)
    return parsed.name, parsed.version


# -- commands --------------------------------------------------------------------------------


def propose(
    ref: str = typer.Argument(..., help="The version to promote: NAME/VERSION, e.g. churn/5."),
    alias: str = typer.Option(..., "--alias", "-a", help="The alias to move, e.g. champion."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (kept on the request)."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Propose pointing an alias at a version; a maintainer of the model approves it.

    The alias's gates are judged now and kept on the request; they are judged again when
    the request is approved, and the alias moves only if they still pass.
    """
    name, version = _name_and_version(ref)
    request = _service().propose(name, version, alias, reason)
    if json:
        print_json(request)
        return
    _print_report(request.gate_report, f"{name}@{alias}")
    console.print(
        Text(
            f"request {request.id}: {name}@{alias} -> version {version}, pending; "
            f"a maintainer of {name} approves it with "
            f"`segue models requests approve {request.id}`"
        )
    )


@requests_app.command("list", epilog="Example: segue models requests list --model churn --json")
def list_requests(
    model: str = typer.Option(None, "--model", "-m", help="Only this model's requests."),
    status: str = typer.Option(
        None, "--status", "-s", help="Only requests pending, approved, rejected or failed."
    ),
    limit: int = typer.Option(100, "--limit", "-n", help="At most this many, newest first."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List promotion requests, newest first, with their gates and who decided them."""
    found = _service().list(model, status, limit)
    if json:
        print_json(found)
        return
    title = f"Promotion requests ({len(found)})"
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("id", "model", "alias", "version", "status", "gates", "when", "proposed by"):
        table.add_column(column, no_wrap=True, justify="right" if column == "id" else "left")
    table.add_column("decided by", no_wrap=True)
    table.add_column("reason")
    for r in found:
        move = (str(r.id), r.model_name, r.alias, str(r.version), r.status, _gates(r))
        who = (when(r.created_at), r.proposed_by, r.decided_by or "-", r.reason)
        table.add_row(*map(Text, move + who))
    print_table(table)


@requests_app.command("show", epilog="Example: segue models requests show 7")
def show(
    request_id: int = typer.Argument(..., help="The request's id."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show a promotion request and the gate report it holds."""
    request = _service().get(request_id)
    if json:
        print_json(request)
        return
    _print_request(request)


@requests_app.command(
    "approve", epilog='Example: segue models requests approve 7 --comment "checked the slices"'
)
def approve(
    request_id: int = typer.Argument(..., help="The request's id."),
    comment: str = typer.Option(None, "--comment", "-c", help="Kept on the request."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Approve a request and move the alias, if its gates still pass now.

    Nobody approves their own request. If a gate fails now, the alias does not move and the
    request becomes failed, with the report of this moment.
    """
    try:
        request = _service().approve(request_id, comment)
    except GateFailed as exc:
        # The report goes to stdout; the one-line error to stderr, from segue.cli.main.
        if json:
            print_json({"request": request_id, "moved": False, "report": exc.report})
        else:
            _print_report([_plain(r) for r in exc.report], "the gates now")
        raise
    if json:
        print_json(request)
        return
    _print_report(request.gate_report, f"{request.model_name}@{request.alias}")
    console.print(
        Text(
            f"request {request.id} approved by {request.decided_by}: "
            f"{request.model_name}@{request.alias} -> version {request.version}"
        )
    )


@requests_app.command(
    "reject", epilog='Example: segue models requests reject 7 --comment "wait for April data"'
)
def reject(
    request_id: int = typer.Argument(..., help="The request's id."),
    comment: str = typer.Option(..., "--comment", "-c", help="Why (kept on the request)."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Reject a request (its proposer may withdraw it so too); nothing moves."""
    request = _service().reject(request_id, comment)
    if json:
        print_json(request)
        return
    console.print(Text(f"request {request.id} rejected by {request.decided_by}: {comment}"))


def policy(
    name: str = typer.Argument(..., help="Model name."),
    require_approval: bool = typer.Option(
        None,
        "--require-approval/--no-require-approval",
        help="Require an approved request for every alias move, maintainers' included "
        "(without either flag: show the policy).",
        show_default=False,
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show or set whether a model's aliases move only through approved requests."""
    service = _service()
    if require_approval is None:
        current = service.policy(name)
    else:
        current = service.set_policy(name, require_approval)
    if json:
        print_json(current)
        return
    if current.require_approval:
        text = f"{name}: every alias move needs an approved promotion request"
    else:
        text = f"{name}: maintainers move aliases directly; anyone may still propose"
    if current.updated_by is not None:
        text += f" (set by {current.updated_by}, {when(current.updated_at)})"
    console.print(Text(text))


# -- rendering -------------------------------------------------------------------------------


def _print_request(request: PromotionRequest) -> None:
    about = Table.grid(padding=(0, 2))
    rows = [
        ("request", str(request.id)),
        ("move", f"{request.model_name}@{request.alias} -> version {request.version}"),
        ("status", request.status),
        ("proposed", f"{when(request.created_at)} by {request.proposed_by}"),
        ("reason", request.reason),
    ]
    if request.decided_by is not None:
        rows.append(("decided", f"{when(request.decided_at)} by {request.decided_by}"))
        rows.append(("comment", request.comment or "-"))
    for key, value in rows:
        about.add_row(f"[bold]{key}[/]", Text(value))
    print_table(about)
    _print_report(request.gate_report, f"{request.model_name}@{request.alias}")


def _print_report(report: list[dict[str, Any]], what: str) -> None:
    if not report:
        console.print(Text(f"no gates for {what}"))
        return
    table = Table(title="Gates", box=box.SIMPLE_HEAD)
    for column in ("requirement", "value", "threshold", "result", "note"):
        table.add_column(column, justify="right" if column in ("value", "threshold") else "left")
    for r in report:
        verdict = "[green]pass[/]" if r.get("passed") else "[red]FAIL[/]"
        cells = (
            Text(str(r.get("requirement"))),
            number(r.get("value")),
            number(r.get("threshold")),
        )
        table.add_row(*cells, verdict, Text(str(r.get("note") or "")))
    print_table(table)


def _gates(request: PromotionRequest) -> str:
    report = request.gate_report
    if not report:
        return "-"
    return f"{sum(1 for g in report if g.get('passed'))}/{len(report)} passed"


def _plain(result: Any) -> dict[str, Any]:
    return dict(result) if isinstance(result, dict) else dict(vars(result))
