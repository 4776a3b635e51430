"""Suite files: the schema (pydantic, extra="forbid"), loading with messages that name file, case and field, and
the checks against a config (route and model names). Running them is evals/suite_run.py.

A suite is a JSON object: a name, a phase, `generate` (false: routing only), defaults, and cases. Each case has
an id, a task and what to check: `expect_route` and/or `checks` on the generated output. docs/suites.md has the
reference and examples.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from ggroute.core.errors import SuiteFileError
from ggroute.core.files import parse_json, read_text
from ggroute.core.schema import StrictModel, format_validation_error
from ggroute.models.config import LoadedConfig
from ggroute.models.metrics import FinishReason


class Checks(StrictModel):
    """What the generated output must satisfy; every check given is evaluated (all must pass)."""

    contains: list[str] = Field(
        default_factory=list, description="A string or a list: each must appear in the output (case-sensitive)."
    )
    not_contains: list[str] = Field(
        default_factory=list, description="A string or a list: none may appear in the output (case-sensitive)."
    )
    regex: list[str] = Field(
        default_factory=list,
        description="A string or a list of Python regular expressions; each must match somewhere in the output "
        "(re.search); use inline flags such as (?i) or (?s). A pattern that does not compile fails the case "
        "with the reason.",
    )
    python: str | None = Field(
        None,
        description="Test code (asserts) run after the code extracted from the output (the first fenced python "
        "block, else the whole output), as one script in the sandbox; the check passes when it exits 0.",
    )
    python_timeout_s: float = Field(10.0, gt=0, le=600, description="Wall-clock limit of the `python` check.")
    max_seconds: float | None = Field(
        None, gt=0, description="Most seconds the case may take, routing, model load and generation included."
    )
    finish_reason: list[FinishReason] = Field(
        default_factory=list,
        description="A string or a list of accepted finish reasons (stop, length, repetition, timeout, "
        "cancelled). Unset, a timed-out or cancelled generation fails the case.",
    )

    @field_validator("contains", "not_contains", "regex", "finish_reason", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise ValueError("must be a string or a list of strings")
        return value

    @field_validator("contains", "not_contains", "regex")
    @classmethod
    def _no_empty_strings(cls, value: list[str]) -> list[str]:
        if any(s == "" for s in value):
            raise ValueError("must not contain an empty string (it would match any output)")
        return value

    @model_validator(mode="after")
    def _timeout_needs_python(self) -> Checks:
        if "python_timeout_s" in self.model_fields_set and self.python is None:
            raise ValueError("python_timeout_s is set but there is no `python` check")
        return self

    def given(self) -> bool:
        lists = self.contains or self.not_contains or self.regex or self.finish_reason
        return bool(lists) or self.python is not None or self.max_seconds is not None


class Target(StrictModel):
    """Where a case runs and with which limits; set in `defaults` or per case (the case wins)."""

    route: str | None = Field(
        None,
        description="Skip the router and run on this route (like `--route`). In a case, `null` means \"use the "
        "router\" even when defaults.route is set.",
    )
    model: str | None = Field(None, description="Skip routing and run on this model (like `generate --model`).")
    max_tokens: int | None = Field(None, ge=1, description="Override the model's max_tokens.")
    timeout_s: float | None = Field(None, gt=0, description="Override the model's timeout_s (seconds).")

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        if self.route is not None and self.model is not None:
            raise ValueError("give `route` or `model`, not both")
        return self


class Case(Target):
    id: str = Field(..., min_length=1, pattern=r"^\S+$", description="Unique in the suite, no spaces.")
    task: str = Field(..., min_length=1, description="The task text, as a user would type it.")
    expect_route: str | None = Field(None, description="The route the router must pick.")
    checks: Checks = Field(default_factory=Checks, description="Checks on the generated output.")

    @field_validator("task")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the task is blank")
        return value


class Suite(StrictModel):
    name: str = Field(..., min_length=1, description="Shown in reports.")
    phase: int = Field(..., ge=1, description="Phase number; `ggroute eval suite --phase N` runs only phase N.")
    description: str | None = Field(None, description="Free text for readers.")
    generate: bool = Field(
        True,
        description="false: a routing-only suite; each case is routed (no generation) and checks expect_route.",
    )
    defaults: Target = Field(default_factory=Target, description="Route/model and limits for every case.")
    cases: list[Case] = Field(..., min_length=1, description="The cases, run in order.")

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise ValueError(f"case id '{case.id}' is used twice")
            seen.add(case.id)
        if not self.generate:
            for key in ("route", "model", "max_tokens", "timeout_s"):
                if getattr(self.defaults, key) is not None:
                    raise ValueError(f"defaults.{key} has no effect when generate is false")
        return self

    def target(self, case: Case) -> Target:
        """The case's effective route/model and limits: a case's route or model (even `"route": null`, which
        means "use the router") replaces the default's."""
        own_target = bool({"route", "model"} & case.model_fields_set)
        return Target(
            route=case.route if own_target else self.defaults.route,
            model=case.model if own_target else self.defaults.model,
            max_tokens=case.max_tokens or self.defaults.max_tokens,
            timeout_s=case.timeout_s or self.defaults.timeout_s,
        )


def _case_problems(suite: Suite) -> list[str]:
    """Cases that check nothing or cannot fail, found after the schema passed."""
    problems = []
    for case in suite.cases:
        target = suite.target(case)
        where = f"case '{case.id}'"
        if not suite.generate:
            if case.checks.given():
                problems.append(f"{where}: checks: a routing-only suite (generate: false) cannot check output")
            for key in ("route", "model", "max_tokens", "timeout_s"):
                if getattr(case, key) is not None:
                    problems.append(f"{where}: {key}: has no effect when generate is false")
            if case.expect_route is None:
                problems.append(f"{where}: expect_route: required when generate is false (nothing else to check)")
        elif case.expect_route is None and not case.checks.given():
            problems.append(f"{where}: checks: the case checks nothing; add checks or expect_route")
        if case.expect_route is not None and (target.route is not None or target.model is not None):
            forced = f"route '{target.route}'" if target.route else f"model '{target.model}'"
            problems.append(f"{where}: expect_route: the case skips the router ({forced}), so it cannot be checked")
    return problems


def load_suite(path: Path) -> Suite:
    """Read and validate one suite file; every problem becomes one SuiteFileError naming file, case and field."""
    data = parse_json(read_text(path, SuiteFileError, "suite file"), path, SuiteFileError)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise SuiteFileError(_format_errors(path, data, exc)) from None
    problems = _case_problems(suite)
    if problems:
        raise SuiteFileError(f"{path}: {len(problems)} problem(s) in suite:\n" + "\n".join(f"  {p}" for p in problems))
    return suite


def _case_label(data: object, index: int) -> str:
    cases = data.get("cases") if isinstance(data, dict) else None
    case = cases[index] if isinstance(cases, list) and index < len(cases) else None
    case_id = case.get("id") if isinstance(case, dict) else None
    return f"case '{case_id}'" if isinstance(case_id, str) and case_id else f"case #{index + 1} (no valid id)"


def _format_errors(path: Path, data: object, exc: ValidationError) -> str:
    def locate(loc: list[int | str]) -> tuple[str, list[int | str]]:
        if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
            return _case_label(data, loc[1]) + ": ", loc[2:]
        return "", loc

    return format_validation_error(path, exc, what="suite", docs="docs/suites.md", locate=locate)


def check_against_config(path: Path, suite: Suite, loaded: LoadedConfig) -> None:
    """Every route and model a suite names exists in the config; errors name the file, case and field."""
    router = loaded.config.router
    routes = list(router.routes) if router is not None else []
    models = list(loaded.config.models)
    problems = []
    for case in suite.cases:
        target = suite.target(case)
        needs_router = target.route is None and target.model is None
        if needs_router and router is None:
            problems.append(f"case '{case.id}': the config has no `router` section, so the case cannot be routed: "
                            "add one, or give the case a `model`")
            continue
        for key, value in (("route", target.route), ("expect_route", case.expect_route)):
            if value is not None and value not in routes:
                known = ", ".join(routes) or "none (the config has no `router` section)"
                problems.append(f"case '{case.id}': {key}: unknown route '{value}': the routes are {known}")
        if target.model is not None and target.model not in models:
            problems.append(f"case '{case.id}': model: unknown model '{target.model}': the config defines "
                            f"{', '.join(models)}")
    if problems:
        raise SuiteFileError(f"{path}: {len(problems)} problem(s) with config {loaded.source}:\n"
                             + "\n".join(f"  {p}" for p in problems))
