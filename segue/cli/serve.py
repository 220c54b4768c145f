"""``segue serve``: the inference server."""

from __future__ import annotations

import typer


def serve(
    model_uri: str = typer.Argument(
        None,
        help="name@alias, name/3 (short for models:/…), runs:/<run_id>/<path> or a folder "
        "(or use --route).",
        show_default=False,
    ),
    route: list[str] = typer.Option(
        None,
        "--route",
        help="URI=WEIGHT, repeatable: spread requests over routes by weight "
        "(churn@champion=90 --route churn@challenger=10). Instead of MODEL_URI.",
        show_default=False,
    ),
    shadow: list[str] = typer.Option(
        None,
        "--shadow",
        help="URI, repeatable: also send each answered request here, for the prediction log "
        "only (never changes or delays the response).",
        show_default=False,
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, help="Processes; each loads the model itself."
    ),
    max_batch_size: int = typer.Option(
        64, "--max-batch-size", min=1, help="Most rows per call of the model's predict."
    ),
    max_latency_ms: float = typer.Option(
        5.0, "--max-latency-ms", min=0.0, help="Most time a request waits to share a batch."
    ),
    max_body_mb: float = typer.Option(
        8.0, "--max-body-mb", min=0.001, help="Larger request bodies get HTTP 413."
    ),
    body_timeout: float = typer.Option(
        30.0,
        "--body-timeout",
        min=0.001,
        help="Seconds a request body may take to arrive; a stalled client gets HTTP 408.",
    ),
    name: str = typer.Option(
        None, "--name", help="Name to serve under (default: the registered model's name)."
    ),
    poll_s: float = typer.Option(
        5.0,
        "--poll-s",
        min=0.01,
        help="Seconds between looks at the registry for moved aliases; a move is also heard "
        "at once (PostgreSQL NOTIFY; SQLite's audit log, read every 0.2 s), by every worker.",
    ),
    log: bool = typer.Option(
        True, "--log/--no-log", help="Keep the prediction log and accept POST /feedback."
    ),
    log_flush_s: float = typer.Option(
        1.0, "--log-flush-s", min=0.01, help="Seconds between prediction log writes."
    ),
    auth: bool = typer.Option(
        False,
        "--auth",
        help="Inference and /feedback need 'Authorization: Bearer <token>': a token of the "
        "store (segue tokens create NAME --scope predict), or the team server's in remote mode. "
        "A revoked token is refused within 2 s.",
    ),
    api_key_file: str = typer.Option(
        None,
        "--api-key-file",
        help="Inference and /feedback need 'Authorization: Bearer <key>', a key of FILE (one a "
        "line, # comments); FILE is read again when it changes. Combines with --auth.",
        metavar="FILE",
        show_default=False,
    ),
) -> None:
    """Serve a model over HTTP: Open Inference Protocol v2, POST /predict, /metrics, /docs.

    Every model is loaded (every hash verified) and warmed up before the server reports ready.
    Alias routes follow the registry: when the alias moves, the new version is loaded in the
    background and swapped in without failing a request. SIGTERM stops accepting connections,
    finishes in-flight requests, then writes the rest of the prediction log.

    With --auth or --api-key-file, inference and /feedback need a bearer token (401 without
    one, 429 after 10 failures from one client in a minute); health, readiness, metadata,
    /metrics and /docs stay open.
    """
    from segue.models.uri import resolve_model_uri
    from segue.serving.options import ServeOptions
    from segue.serving.server import run

    run(
        ServeOptions(
            model_uri=None if model_uri is None else resolve_model_uri(model_uri),
            host=host,
            port=port,
            workers=workers,
            max_batch_size=max_batch_size,
            max_latency_ms=max_latency_ms,
            max_body_mb=max_body_mb,
            body_timeout_s=body_timeout,
            name=name,
            routes=tuple(route or ()),
            shadows=tuple(shadow or ()),
            poll_s=poll_s,
            log=log,
            log_flush_s=log_flush_s,
            auth=auth,
            api_key_file=api_key_file,
        )
    )
