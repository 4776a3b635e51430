"""`ggroute models --plan`: what each configured local model needs at its context size and at the usual sizes,
and whether the set fits memory_budget_mb and this machine's RAM, from GGUF headers alone.

An `hf:` model that is not downloaded yet is planned from its header read over HTTP Range requests
(models/hub_header.py), so a user sees the cost before a multi-gigabyte pull; offline, it is reported as not
downloaded instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ggroute.core.errors import GgrouteError, HubUnreachableError, ModelNotDownloadedError
from ggroute.models.catalog import ModelCatalog, plan_at
from ggroute.models.gguf_info import GGUFInfo
from ggroute.models.hub_ref import parse_hub_ref
from ggroute.models.memory import KV_TABLE_CONTEXTS, ModelPlan


@dataclass(frozen=True)
class PlannedModel:
    name: str
    source: str  # "file" (read from disk) or "hub" (header read remotely: not downloaded yet)
    info: GGUFInfo
    plan: ModelPlan  # at the configured context_size
    by_context: dict[int, int]  # context_size -> bytes this model alone needs

    @property
    def downloaded(self) -> bool:
        return self.source == "file"


@dataclass(frozen=True)
class PlanReport:
    models: list[PlannedModel]
    errors: dict[str, str]  # model name -> why it could not be planned
    budget_bytes: int
    ram_bytes: int  # this machine's total memory

    @property
    def total_bytes(self) -> int:
        """Every planned model loaded at once, at its configured context (a file shared by roles counted once)."""
        return sum(m.plan.added_bytes for m in self.models)

    @property
    def fits_budget(self) -> bool:
        return self.total_bytes <= self.budget_bytes

    @property
    def over_budget_alone(self) -> list[str]:
        return [m.name for m in self.models if m.plan.own_bytes > self.budget_bytes]

    @property
    def budget_above_ram(self) -> bool:
        return self.budget_bytes > self.ram_bytes


def machine_ram_bytes() -> int:
    import psutil  # type: ignore[import-untyped]  # no stubs in the dev dependencies (types-psutil)

    total: int = psutil.virtual_memory().total
    return total


def _header(catalog: ModelCatalog, name: str,
            remote_headers: bool) -> tuple[str, GGUFInfo, GGUFInfo | None]:
    """Where the header came from, the model's header and its prompt copy's (only once the file is here)."""
    try:
        spec = catalog.spec(name)
        return "file", spec.info, spec.prompt_info
    except ModelNotDownloadedError:
        from ggroute.models.hub import is_offline

        if not remote_headers or is_offline():
            raise
        from ggroute.models.hub_header import remote_gguf_info

        try:
            return "hub", remote_gguf_info(parse_hub_ref(catalog.loaded.model_path_ref(name))), None
        except GgrouteError as exc:  # name the model, as catalog.spec does; keep the error's class
            exc.args = (f"{catalog.loaded.source}: models.{name}: {exc}",)
            raise


def plan_report(catalog: ModelCatalog, *, remote_headers: bool = True,
                contexts: tuple[int, ...] = KV_TABLE_CONTEXTS) -> PlanReport:
    planned: list[PlannedModel] = []
    errors: dict[str, str] = {}
    first_user: dict[str, str] = {}
    unreachable_for: str | None = None  # the model for which the Hub could not be reached: not asked again
    for name in catalog.local_names:
        settings = catalog.loaded.model(name)
        try:
            source, info, prompt_info = _header(catalog, name, remote_headers and unreachable_for is None)
        except HubUnreachableError as exc:
            unreachable_for, errors[name] = name, str(exc)
            continue
        except ModelNotDownloadedError as exc:
            skipped = "" if unreachable_for is None else \
                f"; its header was not read because the Hub could not be reached for '{unreachable_for}'"
            errors[name] = f"{exc}{skipped}"
            continue
        except GgrouteError as exc:
            errors[name] = str(exc)
            continue
        plan = plan_at(name, info, settings, settings.context_size, prompt_info)
        owner = first_user.setdefault(plan.path, name)
        if owner != name:
            plan = replace(plan, shares_weights_with=owner)
        sizes = sorted({*contexts, settings.context_size})
        by_context = {ctx: plan_at(name, info, settings, ctx, prompt_info).own_bytes for ctx in sizes}
        planned.append(PlannedModel(name, source, info, plan, by_context))
    return PlanReport(planned, errors, catalog.budget_bytes, machine_ram_bytes())
