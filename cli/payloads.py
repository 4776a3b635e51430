"""The JSON objects `ggroute ... --json` prints: a public interface, one TypedDict per payload.

docs/json-output.md documents every field; change both together, and never rename or drop a field lightly.
Key order in the output is the order the command builds the object in (kept stable; listed the same in the docs).
Classes named ...Base hold the keys always present; their subclass adds the keys present only sometimes.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from typing_extensions import NotRequired

from ggroute.models.metrics import FinishReason

# --- generate --json, run --json ---------------------------------------------------------------------------


class UsagePayload(TypedDict):
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int


class TimingsPayload(TypedDict):
    load_s: float | None
    prefill_s: float
    prefill_tokens_per_s: float | None
    decode_s: float
    decode_tokens_per_s: float | None
    time_to_first_token_s: float | None
    wall_s: float


class LimitsPayload(TypedDict):
    max_tokens: int
    timeout_s: float
    context_size: int
    stop: list[str]


class RemotePayload(TypedDict):
    backend: str
    base_url: str
    upstream_model: str
    usage_from: Literal["upstream", "stream"]
    timings_from: Literal["upstream", "stream"]


class FallbackPayload(TypedDict):
    from_model: str
    reason: str


class GenerationPayload(TypedDict):
    """`generate --json`."""

    model: str
    text: str
    finish_reason: FinishReason
    usage: UsagePayload
    timings: TimingsPayload
    limits: LimitsPayload
    evicted: list[str]
    repetition: RepetitionPayload | None  # set when finish_reason is "repetition"
    code: NotRequired[str]  # with --code: the answer's code
    code_language: NotRequired[str]  # its fence tag ("" when none)
    code_parses: NotRequired[bool | None]  # Python: whether ast.parse accepts it; null for other languages
    remote: NotRequired[RemotePayload]  # a remote model (backend openai) generated
    fallback: NotRequired[FallbackPayload]  # run --json: the route's fallback ran the request


class RepetitionPayload(TypedDict):
    cycle: str
    repeats: int
    dropped_chars: int
    tokens_saved: int


class RunPayload(GenerationPayload):
    """`run --json`: the generation, then the routing decision."""

    route: str
    confidence: float | None
    reason: str
    route_latency_ms: float
    probabilities: dict[str, float]


# --- route --json -------------------------------------------------------------------------------------------


class RoutePayload(TypedDict):
    route: str
    model: str
    confidence: float | None
    reason: str
    latency_ms: float
    probabilities: dict[str, float]
    label_logits: dict[str, float]
    truncated: bool
    evaluated_tokens: int


# --- models --json ------------------------------------------------------------------------------------------


class ModelRowBase(TypedDict):
    name: str
    loaded: bool
    path_ref: str
    file: str | None


class ModelRow(ModelRowBase, total=False):
    error: str  # only when the model cannot be inspected (then none of the keys below)
    backend: str  # only for a remote model ("openai"), with base_url and upstream_model; no file keys
    base_url: str
    upstream_model: str
    warning: str  # a remote model whose api_key_env is not set: listed, but its requests will fail
    reachable: bool  # with --probe, remote models: the probe's answer
    latency_ms: float | None
    lists_model: bool | None
    probe_error: str | None
    size_bytes: int
    architecture: str
    quantization: str
    context_size: int
    estimate_bytes: int
    chat_template: bool


class ModelsPayload(TypedDict):
    config: str
    models: list[ModelRow]


class PlannedModelRow(TypedDict):
    name: str
    source: str  # "file": header read from disk; "hub": an hf: model not downloaded, header read remotely
    downloaded: bool
    file: str
    file_bytes: int
    quantization: str
    context_size: int  # configured
    n_ctx_train: int
    weight_bytes: int
    repacked_bytes: int  # the CPU backend's interleaved copy of Q4_0 / IQ4_NL matrices (per model, never shared)
    kv_bytes: int
    compute_bytes: int
    own_bytes: int  # the model alone at its configured context
    added_bytes: int  # what it adds to the set (shared weights counted once)
    shares_weights_with: str | None
    bytes_by_context: dict[str, int]  # context_size (as a string) -> bytes the model alone needs


class ModelsPlanPayload(TypedDict):
    config: str
    models: list[PlannedModelRow]
    errors: dict[str, str]  # model name -> why it could not be planned
    budget_bytes: int
    total_bytes: int
    fits_budget: bool
    over_budget_alone: list[str]
    ram_bytes: int
    budget_above_ram: bool


class PulledFileRow(TypedDict):
    filename: str  # in the repository
    path: str  # in the Hugging Face cache (a snapshot link)
    size_bytes: int
    downloaded_bytes: int  # by this pull; 0 when it was in the cache already
    verified: str  # "sha256", "git-sha1", "size only", or "cached"


class PulledModelRow(TypedDict):
    name: str | None  # the model in config.json; null for a reference given on the command line
    ref: str  # the reference pinned to its file (a :QUANT reference resolved)
    model_path: str  # the file llama.cpp opens (the first part of a split model)
    files: list[PulledFileRow]


class PullPayload(TypedDict):
    config: str
    pulled: list[PulledModelRow]
    plan: list[PlanRow]  # the pulled models of config.json at their configured context
    budget_bytes: int


# --- config check --json ------------------------------------------------------------------------------------


class PlanRow(TypedDict):
    name: str
    path: str
    context_size: int
    weight_bytes: int
    repacked_bytes: int  # the CPU backend's interleaved copy of Q4_0 / IQ4_NL matrices (per model, never shared)
    kv_bytes: int
    compute_bytes: int
    shares_weights_with: str | None
    own_bytes: int
    added_bytes: int


class ConfigCheckPayload(TypedDict):
    config: str
    budget_bytes: int
    total_bytes: int
    fits: bool
    models: list[PlanRow]
    kv_cache_bytes_by_context: dict[str, dict[str, int]]  # model -> context_size (as a string) -> bytes
    over_budget_alone: list[str]
    warnings: list[str]  # settings that are valid but do not work as written (max_tokens >= context_size)
    remote_models: NotRequired[list[RemoteModelRow]]  # only when the config has remote models


class RemoteModelRowBase(TypedDict):
    name: str
    base_url: str
    upstream_model: str
    api_key_env: str | None
    api_key_set: bool | None  # whether that variable is set here (None: no key configured)


class RemoteModelRow(RemoteModelRowBase, total=False):
    reachable: bool  # with --probe
    latency_ms: float | None
    lists_model: bool | None
    probe_error: str | None


# --- eval routing --json ------------------------------------------------------------------------------------


class LatencyPayload(TypedDict):
    p50: float
    p95: float
    per_evaluated_token_p50: float


class RouteScoresPayload(TypedDict):
    precision: float
    recall: float
    support: int


class MissPayload(TypedDict):
    task: str
    expected: str
    got: str
    confidence: float | None
    reason: str


class CalibrationPayload(TypedDict):
    scale: float
    offsets: dict[str, float]


class FitPayload(TypedDict):
    calibration: CalibrationPayload
    n: int
    accuracy_in_sample: float


class EvalRoutingPayloadBase(TypedDict):
    n: int
    accuracy: float
    fallbacks: int
    latency_ms: LatencyPayload
    per_route: dict[str, RouteScoresPayload]
    confusion: dict[str, dict[str, int]]  # expected route -> routed route -> count
    misses: list[MissPayload]
    confidence: ConfidencePayload


class ConfidencePayload(TypedDict):
    scored: int  # decisions the router made itself (not forced, no fallback)
    expected_calibration_error: float  # 10 bins; 0 is perfect
    wrong_above_0_9: float  # share of scored decisions that were wrong with confidence above 0.9


class SourceScorePayload(TypedDict):
    n: int
    accuracy: float


class EvalRoutingPayload(EvalRoutingPayloadBase, total=False):
    fit: FitPayload  # with --fit
    by_source: dict[str, SourceScorePayload]  # with --by-source: source style -> n, accuracy


# --- router train --json -----------------------------------------------------------------------------------


class TrainHeadPayload(TypedDict):
    head: str  # the file written
    features: str  # last, mean or last+mean
    n: int
    per_route: dict[str, int]
    accuracy_in_sample: float
    accuracy_cross_validated: float
    by_source_held_out: dict[str, float]  # leave-one-source-out accuracy per style (empty with one style)
    by_source_not_held_out: dict[str, str]  # styles that could not be left out (no other style has a route), why


# --- bench --json -------------------------------------------------------------------------------------------


class BenchRow(TypedDict):
    model: str
    settings: str
    n_threads: int
    context_size: int
    n_batch: int
    n_gpu_layers: int
    weights_type: str | None
    cache_type_k: str
    estimate_mb: float | None
    load_s: float | None
    prefill_tokens_per_s: float | None
    decode_tokens_per_s: float | None
    time_to_first_token_s: float | None
    peak_rss_mb: float | None
    skipped: str | None
    fits_budget: bool


class TimeoutAdvicePayload(TypedDict):
    model: str
    max_tokens: int
    timeout_s: float
    decode_tokens_per_s: float | None
    expected_s: float
    too_short: bool


class RatePairPayload(TypedDict):
    ggroute: float
    raw: float


class VsRawPayload(TypedDict):
    pairs: int
    decode_tokens_per_s: RatePairPayload
    prefill_tokens_per_s: RatePairPayload
    decode_ratio: float
    decode_ratio_median_of_pairs: float
    prefill_ratio: float


class AppliedPayloadBase(TypedDict):
    config: str
    changed: dict[str, dict[str, object]]  # model -> config.json field -> value written


class AppliedPayload(AppliedPayloadBase, total=False):
    backup: str  # when something was written
    note: str  # when nothing was
    head_warning: str  # when the router's new settings no longer match router.head (what to do about it)


class BenchPayloadBase(TypedDict):
    results: list[BenchRow]
    interrupted: bool
    best: dict[str, str]  # model -> settings label of its fastest measured row
    timeout_advice: list[TimeoutAdvicePayload]


class BenchPayload(BenchPayloadBase, total=False):
    vs_raw: dict[str, VsRawPayload]  # with --vs-raw
    applied: AppliedPayload  # with --apply


# --- eval suite --json / --report ---------------------------------------------------------------------------


class CheckPayload(TypedDict):
    name: str
    passed: bool
    detail: str
    stderr: str


class CasePayload(TypedDict):
    suite: str
    file: str
    id: str
    task: str
    expect_route: str | None
    route: str | None
    model: str | None
    route_reason: str | None
    confidence: float | None
    output: str | None
    finish_reason: str | None
    completion_tokens: int | None
    decode_tokens_per_s: float | None
    seconds: float
    checks: list[CheckPayload]
    passed: bool


class SuiteTotalsPayload(TypedDict):
    cases: int
    passed: int
    failed: int
    route_checked: int
    route_correct: int
    route_accuracy: float | None
    decode_tokens_per_s_median: float | None
    seconds: float


class SuiteSummaryPayload(SuiteTotalsPayload):
    file: str
    name: str
    phase: int
    generate: bool


class SuiteReportPayload(TypedDict):
    config: str
    suites: list[SuiteSummaryPayload]
    cases: list[CasePayload]
    totals: SuiteTotalsPayload


# --- eval humaneval --json ----------------------------------------------------------------------------------


class ProblemPayload(TypedDict):
    task_id: str
    passed: bool
    reason: str
    completion: str
    finish_reason: str | None
    completion_tokens: int | None
    decode_tokens_per_s: float | None
    generate_s: float
    check_s: float


class HumanEvalPayload(TypedDict):
    dataset: Literal["HumanEval"]
    route: str | None
    model: str
    prompt_mode: Literal["completion", "template", "chat"]
    max_tokens: int
    config: str
    n: int
    passed: int
    pass_at_1: float
    decode_tokens_per_s_median: float | None
    seconds: float
    problems: list[ProblemPayload]
