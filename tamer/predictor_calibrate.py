"""`tamer predictor calibrate`: measure a deployed model's output lengths on the fixed calibration prompts.

The deployment (from the settings, as `tamer serve` reads them) runs each calibration prompt as a chat
request, greedy (temperature 0) with the given max_tokens, several at once so a local engine batches
them. Each answer's length is the backend's own completion-token count (its FinishEvent); answers that
stop at max_tokens are kept at that length and counted as truncated. The lengths become a model card
(predictor/model_card.py) upserted into the user's card file (routing.model_cards_path, or --cards),
where the predictor finds it: a model calibrated this way gets length predictions from its own
measured verbosity instead of the default guess.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import typer

EXIT_USAGE = 2


@dataclass
class CalibrationRun:
    """What a deployment did on the calibration prompts."""

    output_tokens: list[int] = field(default_factory=list)  # one per prompt that finished
    num_truncated: int = 0  # of those, how many stopped at max_tokens
    errors: list[str] = field(default_factory=list)  # one per prompt that failed
    elapsed_s: float = 0.0


def calibration_request(text: str, max_tokens: int):
    """One calibration prompt as a greedy chat request (non-streaming: one upstream call, usage included)."""
    from backends.job import GenerationRequest

    return GenerationRequest(kind="chat", messages=({"role": "user", "content": text},), max_tokens=max_tokens,
                             temperature=0.0)


async def _run_one(backend, spec, text: str, max_tokens: int):
    """The FinishEvent of one prompt run on `backend` (raises the backend's error)."""
    from backends.events import FinishEvent
    from backends.job import Job, new_job_id

    job = Job(job_id=new_job_id(), deployment=spec.name, model=spec.backend_model,
              request=calibration_request(text, max_tokens))
    stream = backend.generate(job)
    try:
        async for event in stream:
            if isinstance(event, FinishEvent):
                return event
    finally:
        await stream.aclose()
    raise RuntimeError(f"deployment {spec.name!r} ended an answer without a finish event")


async def measure(backend, spec, texts: Sequence[str], max_tokens: int, concurrency: int,
                  on_done: Callable[[], None] = lambda: None) -> CalibrationRun:
    """Run every prompt on a started backend, `concurrency` at a time; errors are collected, not raised."""
    run = CalibrationRun()
    gate = asyncio.Semaphore(concurrency)
    started_s = time.perf_counter()

    async def one(text: str) -> None:
        async with gate:
            try:
                finish = await _run_one(backend, spec, text, max_tokens)
            except Exception as err:  # noqa: BLE001 - any failure is reported with the others
                run.errors.append(getattr(err, "message", None) or f"{type(err).__name__}: {err}")
            else:
                run.output_tokens.append(finish.completion_tokens)
                run.num_truncated += finish.finish_reason == "length" or finish.completion_tokens >= max_tokens
            finally:
                on_done()

    await asyncio.gather(*(one(t) for t in texts))
    run.elapsed_s = time.perf_counter() - started_s
    return run


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(EXIT_USAGE)


async def _measure_deployment(spec, texts: Sequence[str], max_tokens: int, concurrency: int) -> CalibrationRun:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from backends.base import create_backend

    backend = create_backend(spec)
    try:
        await backend.start()
    except Exception as err:  # noqa: BLE001 - any start failure is the user's to fix (path, URL, key)
        await _close_quietly(backend)
        raise _fail(f"deployment {spec.name!r} failed to start: {err}") from None
    columns = (TextColumn("calibrating {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            task = progress.add_task(spec.name, total=len(texts))
            return await measure(backend, spec, texts, max_tokens, concurrency,
                                 on_done=lambda: progress.advance(task))
    finally:
        await _close_quietly(backend)


async def _close_quietly(backend) -> None:
    try:
        await backend.close()
    except Exception:  # noqa: BLE001 - closing after a failure must not hide it
        pass


def calibrate(
    deployment: str = typer.Option(..., "--deployment", help="Name of the deployment to calibrate (a "
                                   "[[deployments]] entry, or local-smollm2 for the bundled model)."),
    config_path: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file (or TAMER_CONFIG)."),
    prompts: int = typer.Option(48, "--prompts", min=1, help="How many of the 48 calibration prompts to run."),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1, help="Output cap per prompt (longer answers "
                                   "count as truncated)."),
    strength: Optional[float] = typer.Option(None, "--strength", min=0.0, max=1.0, help="The model's prior "
                                             "P(as good as the strongest model); default: the card's current "
                                             "value, else the default guess."),
    cards_path: Optional[Path] = typer.Option(None, "--cards", help="Model-card file to write (default: "
                                              "routing.model_cards_path, else <cache>/model_cards.json)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1, help="Prompts in flight at once "
                                              "(default: the deployment's max_concurrency)."),
) -> None:
    """Measure a deployed model's output lengths on the calibration prompts and store its model card."""
    import dataclasses

    from predictor.calibration import load_calibration_prompts
    from predictor.model_card import DEFAULT_STRENGTH, MIN_CALIBRATION_PROMPTS, card_from_lengths, load_cards, \
        upsert_card
    from tamer.config import load_settings

    try:
        settings = load_settings(config_path)
    except ValueError as err:
        raise _fail(str(err)) from None
    by_name = {d.name: d for d in settings.deployments}
    spec = by_name.get(deployment)
    if spec is None:
        raise _fail(f"unknown deployment {deployment!r}; the settings define {sorted(by_name)}")
    if prompts < MIN_CALIBRATION_PROMPTS:
        raise _fail(f"--prompts must be at least {MIN_CALIBRATION_PROMPTS}, got {prompts}")
    calibration = load_calibration_prompts()
    if prompts > len(calibration):
        raise _fail(f"--prompts {prompts}: the calibration set has {len(calibration)} prompts")
    cards_file = cards_path if cards_path is not None else settings.routing.model_cards_file
    try:
        existing = load_cards(cards_file).get(spec.model)
    except ValueError as err:
        raise _fail(f"{err}; fix or remove it, or pass --cards FILE") from None
    if existing is None:
        from predictor.learned import shipped_cards

        existing = shipped_cards().get(spec.model)
    if strength is None:  # keep what is known of the model's strength: a calibration measures only lengths
        strength = existing.strength if existing is not None else DEFAULT_STRENGTH
    if concurrency is not None and spec.backend == "local":
        spec = dataclasses.replace(spec, max_concurrency=concurrency)  # the engine batches this many sequences
    texts = [p.text for p in calibration[:prompts]]

    run = asyncio.run(_measure_deployment(spec, texts, max_tokens, concurrency or spec.max_concurrency))
    if len(run.output_tokens) < MIN_CALIBRATION_PROMPTS:
        first = f"; first error: {run.errors[0]}" if run.errors else ""
        raise _fail(f"deployment {spec.name!r} answered {len(run.output_tokens)} of {len(texts)} calibration "
                    f"prompts, at least {MIN_CALIBRATION_PROMPTS} are needed{first}")
    card = card_from_lengths(spec.model, run.output_tokens, strength=strength)
    upsert_card(cards_file, card)

    lengths = sorted(run.output_tokens)
    typer.echo(f"model card for {card.model} (deployment {spec.name}), written to {cards_file}")
    typer.echo(f"  prompts answered      {len(lengths)} of {len(texts)} in {run.elapsed_s:.1f} s "
               f"(max_tokens {max_tokens}, greedy)")
    if run.errors:
        typer.echo(f"  failed                {len(run.errors)} (first: {run.errors[0]})")
    typer.echo(f"  truncated             {run.num_truncated} (stopped at max_tokens)")
    typer.echo(f"  output tokens         min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}, "
               f"mean {sum(lengths) / len(lengths):.1f}")
    typer.echo(f"  log2(1 + tokens)      mean {card.output_log2_mean:.3f}, std {card.output_log2_std:.3f} "
               f"(median ~{card.median_output_tokens:.0f} tokens)")
    typer.echo(f"  strength              {card.strength:.3f}")
