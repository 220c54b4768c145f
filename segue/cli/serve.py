"""``segue serve``: the inference server."""

from __future__ import annotations

import typer


def serve(
    model_uri: str = typer.Argument(
        ..., help="models:/name/3, models:/name@alias, runs:/<run_id>/<path> or a folder."
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
    name: str = typer.Option(
        None, "--name", help="Name to serve under (default: the registered model's name)."
    ),
) -> None:
    """Serve a model over HTTP: Open Inference Protocol v2, POST /predict, /metrics, /docs.

    The model is loaded (every hash verified) and warmed up before the server reports ready.
    SIGTERM stops accepting connections and finishes in-flight requests first.
    """
    from segue.serving.server import ServeOptions, run

    run(
        ServeOptions(
            model_uri=model_uri,
            host=host,
            port=port,
            workers=workers,
            max_batch_size=max_batch_size,
            max_latency_ms=max_latency_ms,
            max_body_mb=max_body_mb,
            name=name,
        )
    )
