"""The models a config defines: their files, GGUF facts and memory plans, looked up lazily and cached.

A local model (backend llama.cpp) is a `ModelSpec`; a remote one (backend openai) a `RemoteSpec`: no file, no
memory plan, it takes nothing from memory_budget_mb. `spec()` is for local models only (the router, bench, the
memory plan need a GGUF file); `entry()` gives either kind (the pool and generation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError

from ggroute.core.errors import ConfigError, ModelFileError, UsageError
from ggroute.models.config import LoadedConfig, ModelConfig
from ggroute.models.convert import convert_weights, cut_layers
from ggroute.models.gguf_info import GGUFInfo, read_gguf_info
from ggroute.models.hub_ref import is_hub_ref
from ggroute.models.locate import resolve_model_path
from ggroute.models.memory import ModelPlan, key_type_problem, plan_model

MB = 1_000_000


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to load one model: its name, settings, file and header facts."""

    name: str
    settings: ModelConfig
    path: Path
    info: GGUFInfo
    plan: ModelPlan
    prompt_info: GGUFInfo | None = None  # the prompt_weights_type copy that reads its prompts, if configured


@dataclass(frozen=True)
class RemoteSpec:
    """A model served by an OpenAI-compatible server: where it is and its settings (validated: base_url and model
    are set)."""

    name: str
    settings: ModelConfig

    @property
    def base_url(self) -> str:
        return self.settings.base_url or ""

    @property
    def upstream_model(self) -> str:
        return self.settings.model or ""


AnySpec = ModelSpec | RemoteSpec


@dataclass(frozen=True)
class BudgetPlan:
    models: list[ModelPlan]
    budget_bytes: int

    @property
    def total_bytes(self) -> int:
        return sum(p.added_bytes for p in self.models)

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes


def plan_at(name: str, info: GGUFInfo, settings: ModelConfig, context_size: int,
            prompt_info: GGUFInfo | None = None) -> ModelPlan:
    """The model's memory at `context_size`, with its prompt_weights_type copy (`prompt_info`) when it has one."""
    plan = plan_model(name, info, context_size, settings.n_batch, settings.swa_full, key_type=settings.cache_type_k,
                      n_gpu_layers=settings.n_gpu_layers)
    if prompt_info is None:
        return plan
    return replace(plan, prompt_copy_bytes=plan_at(name, prompt_info, settings, context_size).own_bytes)


class ModelCatalog:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self._specs: dict[str, ModelSpec] = {}
        self._infos: dict[Path, GGUFInfo] = {}

    @property
    def names(self) -> list[str]:
        return list(self.loaded.config.models)

    @property
    def local_names(self) -> list[str]:
        return [n for n, m in self.loaded.config.models.items() if not m.is_remote]

    def is_remote(self, name: str) -> bool:
        return self.loaded.model(name).is_remote

    def entry(self, name: str) -> AnySpec:
        """The model `name`, local or remote."""
        settings = self.loaded.model(name)
        if settings.is_remote:
            return RemoteSpec(name, settings)
        return self.spec(name)

    @property
    def budget_bytes(self) -> int:
        return self.loaded.config.memory_budget_mb * MB

    def path_of(self, name: str, settings: ModelConfig | None = None) -> Path:
        """The file llama.cpp loads: the configured one, or its `layers` / `weights_type` copy (made on first use)."""
        ref = self.loaded.model_path_ref(name)
        path = resolve_model_path(ref, self.loaded.base_dir)
        # A Hugging Face snapshot link keeps its name: llama.cpp finds a split model's other parts by name beside
        # the first, and its blob is named by a hash.
        path = path if is_hub_ref(ref) else path.resolve()
        settings = settings or self.loaded.model(name)
        if settings.layers is not None:
            self._check_layers(name, path, settings.layers)
            path = cut_layers(path, settings.layers)
        return path if settings.weights_type is None else convert_weights(path, settings.weights_type)

    def _check_layers(self, name: str, path: Path, keep: int) -> None:
        info = self._info(path)
        where = f"{self.loaded.source}: models.{name}.layers"
        if info.metadata.get("split.count", 1) != 1:
            raise ConfigError(f"{where}: {path.name} is split into several files, which `layers` cannot cut; "
                              "merge it with llama-gguf-split --merge first, or remove layers")
        if keep >= info.n_layers:
            raise ConfigError(f"{where} is {keep}, but {path.name} has {info.n_layers} layers: keep fewer "
                              f"(1 to {info.n_layers - 1}), or remove layers to use them all")

    def _info(self, path: Path) -> GGUFInfo:
        info = self._infos.get(path)
        if info is None:
            info = self._infos[path] = read_gguf_info(path)
        return info

    def spec(self, name: str) -> ModelSpec:
        """A local model's file, header facts and memory plan; a UsageError for a remote model, which has none."""
        cached = self._specs.get(name)
        if cached is not None:
            return cached
        settings = self.loaded.model(name)
        if settings.is_remote:
            raise UsageError(f"model '{name}' is remote (backend {settings.backend} at {settings.base_url}): it has "
                             "no GGUF file or memory plan; this needs a local model")
        try:
            path = self.path_of(name)
            info = self._info(path)
        except ModelFileError as exc:  # say which model of which config names the file; keep the error's class
            exc.args = (f"{self.loaded.source}: models.{name}: {exc}",)
            raise
        problem = key_type_problem(info, settings.cache_type_k)
        if problem is not None:
            raise ConfigError(f"{self.loaded.source}: models.{name}.cache_type_k: {problem}")
        spec = self._specs[name] = self._spec_of(name, settings, path, info)
        return spec

    def _spec_of(self, name: str, settings: ModelConfig, path: Path, info: GGUFInfo) -> ModelSpec:
        if settings.prompt_weights_type is None:
            return ModelSpec(name, settings, path, info, plan_at(name, info, settings, settings.context_size))
        if info.sliding_window is not None:
            raise ConfigError(f"{self.loaded.source}: models.{name}.prompt_weights_type: {path.name} has "
                              "sliding-window layers, whose KV cache a copy cannot hand over; remove "
                              "prompt_weights_type")
        copy_path = self.path_of(name, settings.model_copy(update={"weights_type": settings.prompt_weights_type}))
        copy_info = self._info(copy_path)
        plan = plan_at(name, info, settings, settings.context_size, copy_info)
        return ModelSpec(name, settings, path, info, plan, copy_info)

    def spec_with(self, name: str, overrides: dict[str, object]) -> ModelSpec:
        """The model with some settings replaced (a benchmark sweep), validated like config.json."""
        base = self.spec(name)
        if not overrides:
            return base
        try:
            settings = ModelConfig.model_validate({**base.settings.model_dump(), **overrides})
        except ValidationError as exc:
            raise UsageError(f"invalid settings for model '{name}': {exc.errors()[0]['msg']} ({overrides})") from None
        path = base.path if settings.weights_type == base.settings.weights_type else self.path_of(name, settings)
        return self._spec_of(name, settings, path, self._info(path))

    def budget_plan(self) -> BudgetPlan:
        """All local models loaded at once, weights of a shared file counted once (remote ones take nothing)."""
        plans: list[ModelPlan] = []
        first_user: dict[str, str] = {}
        for name in self.local_names:
            plan = self.spec(name).plan
            owner = first_user.setdefault(plan.path, name)
            if owner != name:
                plan = ModelPlan(**{**plan.__dict__, "shares_weights_with": owner})
            plans.append(plan)
        return BudgetPlan(plans, self.budget_bytes)
