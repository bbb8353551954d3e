"""The `tamer` command: serve the gateway, run a worker on the shared queue, generate once with the local model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from tamer import __version__

app = typer.Typer(help="tamer: a cost-aware LLM gateway speaking the OpenAI API.", no_args_is_help=True,
                  add_completion=False)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"tamer {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """tamer: predicts, routes, queues and serves OpenAI-API requests on the cheapest capacity that fits."""


def _load(config: Optional[Path]):
    from tamer.config import load_settings

    try:
        return load_settings(config)
    except ValueError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Address to bind (default 127.0.0.1, or server.host)."),
    port: Optional[int] = typer.Option(None, help="Port (default 8000, or server.port)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file (or TAMER_CONFIG)."),
) -> None:
    """Start the OpenAI-compatible gateway."""
    import dataclasses

    import uvicorn

    from router.api.app import create_app

    settings = _load(config)
    server = dataclasses.replace(
        settings.server, **{k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    settings = settings.replace(server=server)
    logging.basicConfig(level=server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not server.api_keys and server.host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"note: no API keys are set, so only clients on this machine are answered "
                    f"(set server.api_keys or TAMER_API_KEYS to serve others)", fg=typer.colors.YELLOW, err=True)
    shown = "localhost" if server.host in ("127.0.0.1", "0.0.0.0", "::") else server.host
    typer.echo(f"tamer {__version__}: serving {', '.join(d.model for d in settings.deployments)} "
               f"at http://{shown}:{server.port}/v1  (OpenAI API; model='auto' routes)")
    uvicorn.run(create_app(settings), host=server.host, port=server.port, log_level=server.log_level,
                access_log=False)


@app.command()
def worker(
    redis_url: Optional[str] = typer.Option(None, "--redis-url", help="Redis URL of the shared queue "
                                            "(default queue.redis_url, or TAMER_REDIS_URL)."),
    deployment: list[str] = typer.Option([], "--deployment", help="Deployment to serve (repeat for more; "
                                         "default: every deployment in the settings)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file (or TAMER_CONFIG)."),
    worker_id: Optional[str] = typer.Option(None, "--worker-id", help="Name in the load view (default: "
                                            "host-pid)."),
    drain_timeout_s: Optional[float] = typer.Option(None, "--drain-timeout-s", min=0.0, help="On SIGTERM, how "
                                                    "long running jobs may finish before they are handed back."),
) -> None:
    """Run a worker that claims jobs from the shared Redis queue (SIGTERM drains it)."""
    import asyncio
    import dataclasses

    settings = _load(config)
    queue = settings.queue
    if redis_url is not None:
        queue = dataclasses.replace(queue, kind="redis", redis_url=redis_url)
    if queue.kind == "memory":
        typer.secho("error: a standalone worker needs a shared queue (Redis); with the memory queue "
                    "`tamer serve` runs its worker in-process. Pass --redis-url redis://HOST:6379/0 "
                    "(or set queue.kind = \"redis\" and queue.redis_url).", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    from backends.worker_process import run_worker_process, select_deployments

    try:
        deployments = select_deployments(settings.deployments, deployment)
        options = queue.queue_options(settings.deployments)
    except ValueError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    logging.basicConfig(level=settings.server.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    drain_s = queue.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
    coro = run_worker_process(queue.kind, options, deployments, worker_id=worker_id, drain_timeout_s=drain_s)
    try:
        import uvloop
        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        status = runner.run(coro)
    raise typer.Exit(status)


@app.command()
def generate(
    prompt: str = typer.Argument(..., help="The user message."),
    model: Optional[str] = typer.Option(None, help="HF safetensors directory; default: bundled SmolLM2-135M."),
    max_tokens: int = typer.Option(128, "--max-tokens", min=1),
    temperature: float = typer.Option(0.0, min=0.0, max=2.0),
    top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0),
    seed: Optional[int] = typer.Option(None),
    raw: bool = typer.Option(False, "--raw", help="Complete the text as is, without the chat template."),
) -> None:
    """Generate once with the local engine and print the text as it comes."""
    from backends.engine.engine import LLMEngine
    from backends.engine.sampling_params import SamplingParams

    engine = LLMEngine.from_pretrained(model)
    text = prompt if raw else engine.tokenizer.apply_chat_template([{"role": "user", "content": prompt}])
    ids = engine.tokenizer.encode(text, add_special_tokens=False)
    engine.add_request("cli", ids, SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                                  seed=seed))
    while engine.has_unfinished():
        for out in engine.step():
            typer.echo(out.new_text, nl=False)
    typer.echo()


from tamer.cost_commands import plan as _plan, simulate as _simulate  # noqa: E402  (cost_model loads on use)

app.command("plan")(_plan)
app.command("simulate")(_simulate)

from tamer.profile_command import profile as _profile  # noqa: E402  (the engine loads on use)

app.command("profile")(_profile)

from tamer.predictor_commands import app as _predictor_app  # noqa: E402  (predictor loads on use)

app.add_typer(_predictor_app, name="predictor")

if __name__ == "__main__":
    app()
