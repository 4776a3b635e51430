"""pytest plugin (entry point `pytest11: ggroute`): suite files as tests, one test item per case.

Collected: files named `phase*.suite.json` met while pytest walks its paths, any `*.suite.json` given as a path
argument, and each `--ggroute-suite PATH` (any name; with no path arguments, only those suites run). The config:
`--ggroute-config PATH`, else the ini setting `ggroute_config` (relative to the ini file), else ggroute's usual
lookup ($GGROUTE_CONFIG, ./config.json, the packaged default). Disable with `-p no:ggroute`.

pytest imports this module in every session of an environment where ggroute is installed, so it imports nothing
of ggroute at module level: suite files are read at collection, the models load when the first case runs (one
Pipeline per session, closed when the session ends).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ggroute.evals.suite import Case, Suite
    from ggroute.evals.suite_run import CaseResult
    from ggroute.router.pipeline import Pipeline

SUITE_PATTERN = "phase*.suite.json"
_OUTPUT_CHARS = 2000


@dataclass
class _State:
    suites: set[Path] = field(default_factory=set)  # --ggroute-suite and *.suite.json path arguments
    pipeline: Pipeline | None = None
    checked: dict[Path, str] = field(default_factory=dict)  # suite file -> "" or its config problem


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ggroute", "ggroute suite files")
    group.addoption("--ggroute-config", metavar="PATH", default=None,
                    help="config.json for suite cases (else the ini setting ggroute_config, else ggroute's lookup).")
    group.addoption("--ggroute-suite", metavar="PATH", action="append", default=[],
                    help="Run this suite file whatever its name (repeatable).")
    group.addoption("--unsafe-no-sandbox", action="store_true", default=False,
                    help="Run python checks' generated code WITHOUT the bwrap sandbox (rlimits and a timeout only).")
    parser.addini("ggroute_config", "config.json for ggroute suite cases, relative to the ini file.", default="")


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """When suite cases with python checks were collected: how their code is contained, or the warning."""
    from ggroute.core.errors import SandboxUnavailableError
    from ggroute.evals.sandbox import UNSAFE_WARNING, Isolation, describe_isolation

    if not any(isinstance(item, SuiteItem) and item.case.checks.python is not None for item in items):
        return []
    if config.getoption("unsafe_no_sandbox"):
        return [f"ggroute: {UNSAFE_WARNING}"]
    try:
        return [f"ggroute sandbox: {describe_isolation(Isolation.BWRAP)}"]
    except SandboxUnavailableError as exc:
        return [f"ggroute sandbox: {exc}"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ggroute: a case of a ggroute suite file")
    state = _State()
    config.stash[_STATE] = state
    base = config.invocation_params.dir
    given = [base / raw for raw in config.getoption("ggroute_suite")]
    for path in given:
        if not path.is_file():
            raise pytest.UsageError(f"--ggroute-suite {path}: file not found")
    state.suites = {p.resolve() for p in given}
    paths = (arg.split("::", 1)[0] for arg in config.args)  # "file.suite.json::case" selects one case
    state.suites |= {(base / p).resolve() for p in paths if p.endswith(".suite.json")}
    if given:
        explicit = config.args_source == pytest.Config.ArgsSource.ARGS
        config.args = [*(config.args if explicit else []), *(str(p) for p in given)]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SuiteFile | None:
    state = parent.config.stash[_STATE]
    if fnmatch.fnmatch(file_path.name, SUITE_PATTERN) or file_path.resolve() in state.suites:
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is not None and state.pipeline is not None:
        state.pipeline.close()
        state.pipeline = None


class SuiteFile(pytest.File):
    def collect(self) -> Iterator[SuiteItem]:
        from ggroute.evals.suite import load_suite

        suite = load_suite(self.path)
        for case in suite.cases:
            yield SuiteItem.from_parent(self, name=case.id, suite=suite, case=case)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        return _known_error(excinfo) or super().repr_failure(excinfo)


class CaseFailed(Exception):
    def __init__(self, result: CaseResult) -> None:
        super().__init__(f"case '{result.id}' failed")
        self.result = result


class SuiteItem(pytest.Item):
    def __init__(self, *, suite: Suite, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.case = case
        self.add_marker("ggroute")

    def runtest(self) -> None:
        from ggroute.evals.sandbox import Isolation
        from ggroute.evals.suite_run import run_case

        pipeline = _pipeline(self.config, self.path, self.suite)
        unsafe = self.config.getoption("unsafe_no_sandbox")
        result = run_case(pipeline, self.path, self.suite, self.case,
                          isolation=Isolation.NONE if unsafe else Isolation.BWRAP)
        self.user_properties.append(("ggroute_route", result.route))
        self.user_properties.append(("ggroute_seconds", result.seconds))
        if not result.passed:
            raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFailed):
            return describe_failure(excinfo.value.result)
        return _known_error(excinfo) or super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.suite.name}: {self.case.id}"


def _known_error(excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    from ggroute.core.errors import GgrouteError

    return str(excinfo.value) if isinstance(excinfo.value, GgrouteError) else None


def _config_path(config: pytest.Config) -> Path | None:
    option = config.getoption("ggroute_config")
    if option:
        return config.invocation_params.dir / option
    ini = config.getini("ggroute_config")
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return base / ini
    return None


def _pipeline(config: pytest.Config, path: Path, suite: Suite) -> Pipeline:
    """The session's Pipeline, created on first use; each suite file is checked against its config once."""
    from ggroute.core.errors import UsageError
    from ggroute.evals.suite import check_against_config
    from ggroute.models.config import load_config
    from ggroute.router.pipeline import Pipeline

    state = config.stash[_STATE]
    if state.pipeline is None:
        state.pipeline = Pipeline(load_config(_config_path(config)))
    if path not in state.checked:
        try:
            check_against_config(path, suite, state.pipeline.loaded)
            state.checked[path] = ""
        except UsageError as exc:
            state.checked[path] = str(exc)
    if state.checked[path]:
        raise UsageError(state.checked[path])
    return state.pipeline


def describe_failure(result: CaseResult) -> str:
    """What a failed case shows: the task, the route, which checks failed and why, and the output."""
    route = result.route or "-"
    if result.route_reason:
        route += f" ({result.route_reason})"
    lines = [f"ggroute case '{result.id}' of suite '{result.suite}' failed", f"task:   {result.task}",
             f"route:  {route}" + (f"; expected '{result.expect_route}'" if result.expect_route else "")]
    if result.finish_reason is not None:
        lines.append(f"model:  {result.model}, finish_reason {result.finish_reason}, "
                     f"{result.completion_tokens} tokens, {result.seconds:.2f} s")
    lines.append("failed checks:")
    for check in result.failures:
        lines.append(f"  {check.name}: {check.detail}")
        lines.extend(f"    | {line}" for line in check.stderr.strip().splitlines()[-12:])
    if result.output is not None:
        text = result.output[:_OUTPUT_CHARS] + ("\n[... output truncated]" if len(result.output) > _OUTPUT_CHARS
                                                else "")
        lines.append("output:")
        lines.extend(f"  | {line}" for line in (text.splitlines() or ["(empty)"]))
    return "\n".join(lines)
