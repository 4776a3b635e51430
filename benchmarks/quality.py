"""Output quality per route and configuration variant, on HumanEval: what issue 11's changes are judged by.

For each route and each variant (the shipped config, or model settings changed for that route's model), runs
all HumanEval problems (or --limit N, or --task HumanEval/N ...) the way `ggroute eval humaneval --route R`
does, and reports: pass@1, how generations ended (stop / repetition / length / timeout), how many ran into
max_tokens while looping (the last 600 characters compress below 25% of their size with zlib: text that repeats itself),
completion tokens per problem, and wall time (generation and the sandboxed checks).

    python benchmarks/quality.py --route coder --route algorithm \\
        --variant shipped --variant 'dry:dry_multiplier=0.8' --json-out quality.json

A variant is NAME or NAME:KEY=VALUE[,KEY=VALUE...]; keys are model settings (config.json `models.<name>.*`),
applied to the route's model, or `request.stop_after_code` (default true, as `ggroute eval humaneval` runs), or
`request.stop_after_asked` (default true: with stop_after_code, stop before what follows the function the problem's
signature asks for), or `request.prompt` (completion, template or chat: as `ggroute eval humaneval --prompt`;
default: as configured);
values are JSON (strings may be bare), or @FILE for a file's text (a prompt template). With --suite FILE
(repeatable) each variant also runs those suites (e.g. docs/suites/phase3.suite.json) with the variant's
settings, and reports cases passed. Variants run one after another in one process, so their wall times are
comparable only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from _overrides import load_with_overrides

from ggroute.evals import humaneval as he
from ggroute.evals.sandbox import Isolation
from ggroute.evals.suite import load_suite
from ggroute.evals.suite_run import run_case
from ggroute.models.catalog import ModelCatalog
from ggroute.models.config import LoadedConfig
from ggroute.models.generate import RequestOptions
from ggroute.router.pipeline import Pipeline

REQUEST_KEYS = {"stop_after_code", "stop_after_asked", "prompt"}
LOOP_TAIL_CHARS = 600
LOOP_COMPRESSION = 0.25


@dataclass(frozen=True)
class Variant:
    name: str
    settings: dict[str, object]

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, _, rest = text.partition(":")
        settings: dict[str, object] = {}
        for item in filter(None, rest.split(",")):
            key, _, raw = item.partition("=")
            if raw.startswith("@"):  # a long value (a prompt template) read verbatim from a file
                settings[key.strip()] = Path(raw[1:]).read_text(encoding="utf-8")
                continue
            try:
                settings[key.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                settings[key.strip()] = raw
        return cls(name, settings)


def looping(text: str) -> bool:
    tail = text[-LOOP_TAIL_CHARS:].encode("utf-8")
    return len(tail) >= LOOP_TAIL_CHARS // 2 and len(zlib.compress(tail, 9)) < LOOP_COMPRESSION * len(tail)


def suite_score(loaded: LoadedConfig, suites: list[str]) -> dict[str, object]:
    """Cases passed per suite with the variant's config (all routes, as `ggroute eval suite` runs them)."""
    scores: dict[str, object] = {}
    with Pipeline(loaded) as pipeline:
        for name in suites:
            path = Path(name)
            suite = load_suite(path)
            results = [run_case(pipeline, path, suite, case) for case in suite.cases]
            scores[suite.name] = {"passed": sum(r.passed for r in results), "n": len(results),
                                  "failed": [r.id for r in results if not r.passed]}
    return scores


def measure(config: str | None, route: str, variant: Variant, limit: int | None,
            suites: list[str], tasks: list[str]) -> dict[str, object]:
    base = load_with_overrides(config, [])
    router = base.config.router
    if router is None or route not in router.routes:
        raise SystemExit(f"route '{route}' is not in the config")
    model = router.routes[route].model
    request = {key.removeprefix("request."): value for key, value in variant.settings.items()
               if key.startswith("request.")}
    if unknown := sorted(set(request) - REQUEST_KEYS):  # a typo would silently measure the shipped setting
        raise SystemExit(f"variant '{variant.name}': unknown request.{unknown[0]} "
                         f"(known: {', '.join(sorted(REQUEST_KEYS))})")
    loaded = load_with_overrides(config, [f"models.{model}.{key}={json.dumps(value)}"
                                          for key, value in variant.settings.items() if not key.startswith("request.")])
    spec = ModelCatalog(loaded).spec(model)
    mode = request.get("prompt", he.prompt_mode(spec))
    if mode not in he.PROMPT_MODES:
        raise SystemExit(f"request.prompt must be one of {', '.join(he.PROMPT_MODES)}")
    max_tokens = min(spec.settings.max_tokens, 512)
    problems = he.load_problems(limit)
    if tasks:
        known = {p.task_id for p in problems}
        if missing := [t for t in tasks if t not in known]:
            raise SystemExit(f"unknown --task {missing[0]} (e.g. HumanEval/0)")
        problems = [p for p in problems if p.task_id in tasks]
    started = time.perf_counter()
    with Pipeline(he.eval_config(loaded, spec, mode)) as pipeline:
        options = RequestOptions(max_tokens=max_tokens, stop_after_code=bool(request.get("stop_after_code", True)),
                                 stop_after_asked=bool(request.get("stop_after_asked", True)))
        results = he.run_humaneval(pipeline, model, mode, problems, options,
                                   isolation=Isolation.BWRAP)
    wall = time.perf_counter() - started
    suite_scores = suite_score(loaded, suites) if suites else {}
    tokens = [r.completion_tokens or 0 for r in results]
    finishes = Counter(r.finish_reason or "error" for r in results)
    return {
        "route": route, "model": model, "variant": variant.name, "settings": variant.settings,
        "prompt_mode": mode, "n": len(results), "passed": sum(r.passed for r in results),
        "pass_at_1": round(sum(r.passed for r in results) / len(results), 4),
        "finish": dict(finishes),
        "length_while_looping": sum(r.finish_reason == "length" and looping(r.completion) for r in results),
        "completion_tokens_total": sum(tokens),
        "completion_tokens_median": statistics.median(tokens),
        "wall_s": round(wall, 1),
        "suites": suite_scores,
        "passed_ids": [r.task_id for r in results if r.passed],
        "problems": [{"task_id": r.task_id, "passed": r.passed, "finish_reason": r.finish_reason,
                      "completion_tokens": r.completion_tokens, "looping": looping(r.completion),
                      "tail": r.completion[-LOOP_TAIL_CHARS:],
                      # whole text where it ran into max_tokens: what a loop guard change is studied on
                      "completion": r.completion if r.finish_reason == "length" else None} for r in results],
    }


def suites_cell(scores: object) -> str:
    assert isinstance(scores, dict)
    return ", ".join(f"{name} {score['passed']}/{score['n']}" for name, score in scores.items()) or "-"


def table(rows: list[dict[str, object]]) -> str:
    lines = ["| route | variant | pass@1 | stop / repetition / length | length while looping | "
             "tokens (total, median) | wall | suites |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        finish = row["finish"]
        assert isinstance(finish, dict)
        lines.append(
            f"| {row['route']} | {row['variant']} | {float(row['pass_at_1']):.1%} ({row['passed']}/{row['n']}) | "  # type: ignore[arg-type]
            f"{finish.get('stop', 0)} / {finish.get('repetition', 0)} / {finish.get('length', 0)} | "
            f"{row['length_while_looping']} | {row['completion_tokens_total']:,}, {row['completion_tokens_median']} | "
            f"{row['wall_s']} s | {suites_cell(row['suites'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--route", action="append", required=True)
    parser.add_argument("--variant", action="append", default=None, help="NAME[:KEY=VALUE,...] (default: shipped)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("-c", "--config", default=None)
    parser.add_argument("--suite", action="append", default=[], help="also run this suite file per variant")
    parser.add_argument("--task", action="append", default=[], help="only this problem (HumanEval/N); repeatable")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    variants = [Variant.parse(text) for text in (args.variant or ["shipped"])]
    rows = []
    for route in args.route:
        for variant in variants:
            row = measure(args.config, route, variant, args.limit, args.suite, args.task)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("passed_ids", "problems")}), flush=True)
    print(table(rows))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
