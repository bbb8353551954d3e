"""`tamer predictor calibrate`: measure a deployed model's output lengths on the fixed calibration prompts.

The deployment (from the settings, as `tamer serve` reads them) runs each calibration prompt as a chat
request, greedy (temperature 0) with the given max_tokens, several at once so a local engine batches
them: the 48 card prompts (`--prompts`) and the 20 kind prompts (`--kind-prompts`; multiple choice, math,
code: predictor/calibration.py). Each answer's length is the backend's own completion-token count (its
FinishEvent); answers that stop at max_tokens are kept at that length and counted as truncated. The
lengths become a model card (predictor/model_card.py) upserted into the user's card file
(routing.model_cards_path, or --cards), where the predictor finds it: a model calibrated this way gets
length predictions from its own measured verbosity on the card prompts instead of the default guess, and
its length correction starts from how far off those predictions were on each kind of prompt.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import typer

if TYPE_CHECKING:
    from predictor.calibration import CalibrationPrompt

EXIT_USAGE = 2


@dataclass
class CalibrationRun:
    """What a deployment did on the calibration prompts."""

    output_tokens: dict[str, int] = field(default_factory=dict)  # by prompt id, each prompt that finished
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


async def measure(backend, spec, prompts: Sequence[CalibrationPrompt], max_tokens: int, concurrency: int,
                  on_done: Callable[[], None] = lambda: None) -> CalibrationRun:
    """Run every prompt on a started backend, `concurrency` at a time; errors are collected, not raised."""
    run = CalibrationRun()
    gate = asyncio.Semaphore(concurrency)
    started_s = time.perf_counter()

    async def one(prompt: CalibrationPrompt) -> None:
        async with gate:
            try:
                finish = await _run_one(backend, spec, prompt.text, max_tokens)
            except Exception as err:  # noqa: BLE001 - any failure is reported with the others
                run.errors.append(getattr(err, "message", None) or f"{type(err).__name__}: {err}")
            else:
                run.output_tokens[prompt.prompt_id] = finish.completion_tokens
                run.num_truncated += finish.finish_reason == "length" or finish.completion_tokens >= max_tokens
            finally:
                on_done()

    await asyncio.gather(*(one(p) for p in prompts))
    run.elapsed_s = time.perf_counter() - started_s
    return run


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(EXIT_USAGE)


async def _measure_deployment(spec, prompts: Sequence[CalibrationPrompt], max_tokens: int,
                              concurrency: int) -> CalibrationRun:
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
            task = progress.add_task(spec.name, total=len(prompts))
            return await measure(backend, spec, prompts, max_tokens, concurrency,
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
                                   "\\[\\[deployments]] entry, or local-smollm2 for the bundled model)."),
    config_path: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file (or TAMER_CONFIG)."),
    prompts: int = typer.Option(48, "--prompts", min=1, help="How many of the 48 card prompts to run (they "
                                "measure the card's verbosity)."),
    num_kind_prompts: int = typer.Option(20, "--kind-prompts", min=0, help="How many of the 20 kind prompts "
                                         "to run (they measure the per-kind offsets; 0: none)."),
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

    from predictor.calibration import card_prompts, kind_prompts
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
    for_card, for_kinds = card_prompts(), kind_prompts()
    if prompts > len(for_card):
        raise _fail(f"--prompts {prompts}: the calibration set has {len(for_card)} card prompts")
    if num_kind_prompts > len(for_kinds):
        raise _fail(f"--kind-prompts {num_kind_prompts}: the calibration set has {len(for_kinds)} kind prompts")
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
    chosen = for_card[:prompts] + for_kinds[:num_kind_prompts]

    run = asyncio.run(_measure_deployment(spec, chosen, max_tokens, concurrency or spec.max_concurrency))
    card_lengths = [run.output_tokens[p.prompt_id] for p in for_card[:prompts] if p.prompt_id in run.output_tokens]
    if len(card_lengths) < MIN_CALIBRATION_PROMPTS:
        first = f"; first error: {run.errors[0]}" if run.errors else ""
        raise _fail(f"deployment {spec.name!r} answered {len(card_lengths)} of {prompts} card prompts, at least "
                    f"{MIN_CALIBRATION_PROMPTS} are needed{first}")
    card = card_from_lengths(spec.model, card_lengths, strength=strength, by_prompt=run.output_tokens)
    upsert_card(cards_file, card)

    lengths = sorted(card_lengths)
    typer.echo(f"model card for {card.model} (deployment {spec.name}), written to {cards_file}")
    typer.echo(f"  prompts answered      {len(run.output_tokens)} of {len(chosen)} in {run.elapsed_s:.1f} s "
               f"(max_tokens {max_tokens}, greedy)")
    if run.errors:
        typer.echo(f"  failed                {len(run.errors)} (first: {run.errors[0]})")
    typer.echo(f"  truncated             {run.num_truncated} (stopped at max_tokens)")
    typer.echo(f"  card prompts' tokens  min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}, "
               f"mean {sum(lengths) / len(lengths):.1f}")
    typer.echo(f"  log2(1 + tokens)      mean {card.output_log2_mean:.3f}, std {card.output_log2_std:.3f} "
               f"(geometric mean ~{card.median_output_tokens:.0f} tokens)")
    typer.echo(f"  strength              {card.strength:.3f}")
    _echo_offsets(card.model, cards_file)


def _echo_offsets(model: str, cards_file: Path) -> None:
    """What the learned predictor now starts this model's length correction at, per kind of prompt."""
    from predictor.features import PROMPT_KINDS
    from predictor.learned import LearnedPredictor

    try:
        correction = LearnedPredictor(cards_path=cards_file).correction
    except Exception as err:  # noqa: BLE001 - the card is written; only this summary is lost
        typer.echo(f"  length offsets        not shown: the learned predictor did not load ({err})")
        return
    typer.echo(f"  length offset, log2   {correction.offset_log2(model):+.2f} over "
               f"{correction.observations(model)} prompts (measured / the learned predictor's median)")
    for kind, _ in PROMPT_KINDS:
        if correction.observations(model, kind):
            typer.echo(f"    {kind:<19} {correction.offset_log2(model, kind):+.2f} over "
                       f"{correction.observations(model, kind)} prompts")
