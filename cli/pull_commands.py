"""`ggroute pull`: download the `hf:` models config.json names (or one reference), with a progress bar, then
check each header and print the memory plan; and `--pull` / `auto_pull` for the commands that run models."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ggroute.cli import render
from ggroute.cli.common import ConfigOption, JsonOption, emit_json, err, fail, flag_option, guarded, out
from ggroute.cli.config_commands import plan_row
from ggroute.cli.exit_codes import EXIT_INTERRUPTED
from ggroute.cli.payloads import PulledModelRow, PullPayload
from ggroute.core.errors import ModelNotDownloadedError, UnknownModelError, UsageError
from ggroute.models.config import LoadedConfig, load_config
from ggroute.models.hub_ref import HubRef, HubRefError, is_hub_ref, parse_hub_ref

if TYPE_CHECKING:
    from ggroute.models.catalog import BudgetPlan
    from ggroute.models.hub import PullResult

PullOption = Annotated[bool, flag_option(
    "--pull", help="Download an hf: model that is not in the Hugging Face cache yet (config: auto_pull).")]


class RichDownload:
    """models.hub.DownloadProgress as a rich progress bar on stderr: bytes, speed, time left."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def start(self, filename: str, total: int | None, done: int) -> None:
        self.task = self.progress.add_task(escape(filename), total=total, completed=done)

    def advance(self, n: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def finish(self) -> None:
        self.task = None


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=err, transient=False)


def hub_models(loaded: LoadedConfig) -> dict[str, HubRef]:
    """The models of the config whose path is an hf: reference (validated by the config schema)."""
    return {name: parse_hub_ref(m.path) for name, m in loaded.config.models.items()
            if m.path is not None and is_hub_ref(m.path)}


def download(ref: HubRef) -> PullResult:
    """Pull one reference with a progress bar; Ctrl+C keeps the partial file and exits 130."""
    from ggroute.models.hub import log_once, pull

    log_once()
    with _progress() as progress:
        try:
            return guarded(lambda: pull(ref, RichDownload(progress)))
        except KeyboardInterrupt:
            progress.stop()
            err.print(f"[yellow]interrupted[/]: what was downloaded is kept; run `ggroute pull {escape(ref.text)}` "
                      "again to resume")
            raise typer.Exit(EXIT_INTERRUPTED) from None


def _missing(loaded: LoadedConfig) -> dict[str, HubRef]:
    from ggroute.models.hub import local_model_file

    missing = {}
    for name, ref in hub_models(loaded).items():
        try:
            local_model_file(ref)
        except ModelNotDownloadedError:
            missing[name] = ref
    return missing


def pull_if_asked(loaded: LoadedConfig, asked: bool) -> None:
    """With --pull or auto_pull: download the config's hf: models missing from the cache, before anything runs."""
    if not (asked or loaded.config.auto_pull):
        return
    for name, ref in _missing(loaded).items():
        err.print(f"model '{name}': downloading {escape(ref.text)}")
        download(ref)


def require_downloaded(loaded: LoadedConfig, config: Path | None) -> None:
    """A server must not start with a model it cannot load: every hf: model must be in the cache."""
    missing = _missing(loaded)
    if missing:
        command = "ggroute pull" + (f" --config {config}" if config is not None else "")
        raise fail(ModelNotDownloadedError(
            f"{', '.join(f'{n} ({r.text})' for n, r in missing.items())} not downloaded: run `{command}`, or pass "
            "--pull", command=command))


def pull(
    target: Annotated[str | None, typer.Argument(
        help="A model name from config.json or an hf: reference; none: every hf: model config.json names.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download hf: models into the Hugging Face cache (resumable), check their GGUF headers and print the
    memory plan at the configured context."""
    loaded = guarded(lambda: load_config(config))
    refs = _targets(loaded, target)
    rows: list[PulledModelRow] = []
    for name, ref in refs.items():
        result = download(ref)
        rows.append(_pulled_row(name or None, result))
        size = sum(f.size for f in result.files)
        got = sum(f.downloaded_bytes for f in result.files)
        how = ", ".join(sorted({f.verified for f in result.files}))
        what = f"downloaded {render.mb(got)}" if got else "already in the cache"
        label = f"{escape(name)}: " if name else ""
        err.print(f"{label}{escape(result.ref.text)} {what} ({render.mb(size)}, {how}) -> "
                  f"{escape(str(result.model_path))}", soft_wrap=True)
    plan = _plan(loaded, [n for n in refs if n])
    if as_json:
        payload: PullPayload = {"config": str(loaded.source), "pulled": rows,
                                "plan": [plan_row(p) for p in plan.models] if plan else [],
                                "budget_bytes": loaded.config.memory_budget_mb * 1_000_000}
        emit_json(payload)
    elif plan is not None:
        out.print(render.plan_table(plan, {p.name: Path(p.path).name for p in plan.models}))


def _pulled_row(name: str | None, result: PullResult) -> PulledModelRow:
    return {"name": name, "ref": result.ref.text, "model_path": str(result.model_path),
            "files": [{"filename": f.filename, "path": str(f.path), "size_bytes": f.size,
                       "downloaded_bytes": f.downloaded_bytes, "verified": f.verified} for f in result.files]}


def _targets(loaded: LoadedConfig, target: str | None) -> dict[str, HubRef]:
    """Model name ('' for a bare reference) -> reference to pull."""
    if target is not None and is_hub_ref(target):
        try:
            ref = parse_hub_ref(target)
        except HubRefError as exc:
            raise fail(UsageError(str(exc))) from None
        named = [n for n, r in hub_models(loaded).items() if r == ref]
        return {named[0] if named else "": ref}
    refs = hub_models(loaded)
    if target is None:
        if not refs:  # not an error: every model is a local file or ships in a package
            err.print(f"nothing to pull: {escape(str(loaded.source))} names no hf: models (its models are local files "
                      "or ship in Python packages); to download one: `ggroute pull hf:OWNER/REPO:Q4_K_M`",
                      soft_wrap=True)
        return refs
    if target not in loaded.config.models:
        raise fail(UnknownModelError(target, list(loaded.config.models)))
    if target not in refs:
        path = loaded.model(target).path or "the shipped model"
        raise fail(UsageError(f"model '{target}' is not an hf: model (its path is {path}): nothing to pull"))
    return {target: refs[target]}


def _plan(loaded: LoadedConfig, names: list[str]) -> BudgetPlan | None:
    """The memory plan of the pulled models at their configured context (headers read and checked here)."""
    if not names:
        return None
    from ggroute.models.catalog import BudgetPlan, ModelCatalog

    catalog = ModelCatalog(loaded)
    specs = [guarded(partial(catalog.spec, name)) for name in names]
    return BudgetPlan([s.plan for s in specs], catalog.budget_bytes)
