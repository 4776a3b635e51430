"""How often the loop guard would stop text that is not a loop: every file of a corpus of human-written code and
prose (by default the Python standard library's .py files and the .md/.rst/.txt files installed beside it) is
streamed through the shipped guard settings as if a model were writing it, 16 characters at a time, and every
file where the guard fires is listed with the cycle it saw. None of this text was looked at when the rules were
written, so it is the out-of-sample check of "ordinary text must not trip the guard".

Files are cut to their first --max-chars characters (a long answer is a few thousand; the guard's state only
grows with the text). `--baseline FILE` streams every file through a second guard module as well (e.g. the
previous version: `git show HEAD~1:models/loop_guard.py > /tmp/old_guard.py`), side by side in one run.
`--loops FILE` (a `benchmarks/quality.py --json-out` file, repeatable) also replays the outputs there that ran
into max_tokens (kept whole) and counts how many of them each guard stops: the other side of the trade.
Usage:

    python benchmarks/loop_guard_false_positives.py [--root DIR ...] [--suffix .h ...] [--max-chars 8000]
        [--baseline FILE] [--loops QUALITY_JSON ...] [--show 20] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import sysconfig
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from ggroute.models import loop_guard
from ggroute.models.config import LoopGuardConfig
from ggroute.models.loop_guard import Loop

SUFFIXES = [".py", ".md", ".rst", ".txt"]
CHUNK_CHARS = 16  # about four tokens: the guard sees the text in pieces, as it does while streaming


def default_roots() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    site = Path(sysconfig.get_paths()["purelib"])
    return [stdlib, site]


def corpus(roots: list[Path], suffixes: list[str]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        files.extend(p for p in root.rglob("*") if p.suffix in suffixes and p.is_file())
    return sorted(set(files))


def load_guard_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_loop_guard", path)
    if spec is None or spec.loader is None:
        sys.exit(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def stream(guard: Any, text: str) -> Loop | None:
    for end in range(CHUNK_CHARS, len(text) + CHUNK_CHARS, CHUNK_CHARS):
        loop: Loop | None = guard.feed(text[:end], max(0, end - CHUNK_CHARS))
        if loop is not None:
            return loop
    return None


def replay_loops(paths: list[Path], settings: LoopGuardConfig, baseline: ModuleType | None) -> dict[str, object]:
    """Outputs that ran into max_tokens in quality.py runs, replayed: how many each guard stops, and how many of
    those quality.py's compression heuristic calls looping that each guard misses."""
    outputs = []
    for path in paths:
        for variant in json.loads(path.read_text()):
            outputs += [(f"{variant['route']}/{variant['variant']}:{p['task_id']}", p["completion"], p["looping"])
                        for p in variant["problems"] if p.get("completion")]
    guards = {"guard": loop_guard} | ({"baseline": baseline} if baseline is not None else {})
    result: dict[str, object] = {"outputs": len(outputs), "looping": sum(looping for _, _, looping in outputs)}
    for name, module in guards.items():
        stopped = [(label, stream(module.LoopGuard(settings.min_repeats, settings.max_cycle_lines), text), looping)
                   for label, text, looping in outputs]
        result[f"{name}_stopped"] = sum(loop is not None for _, loop, _ in stopped)
        result[f"{name}_missed_looping"] = [label for label, loop, looping in stopped if loop is None and looping]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", action="append", type=Path, help="folder to read (repeatable)")
    parser.add_argument("--suffix", action="append", help=f"file suffix to read (repeatable; default {SUFFIXES})")
    parser.add_argument("--max-chars", type=int, default=8000)
    parser.add_argument("--baseline", type=Path, help="a second loop_guard.py to compare with, side by side")
    parser.add_argument("--loops", action="append", type=Path, default=[],
                        help="quality.py --json-out file whose max_tokens outputs are replayed (repeatable)")
    parser.add_argument("--show", type=int, default=20, help="list this many firings")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = LoopGuardConfig()
    files = corpus(args.root or default_roots(), args.suffix or SUFFIXES)
    if not files:
        sys.exit("no files with those suffixes under the given roots")
    baseline = load_guard_module(args.baseline) if args.baseline else None
    started = time.perf_counter()
    fired: list[dict[str, object]] = []
    baseline_fired = 0
    chars = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")[: args.max_chars]
        except (UnicodeDecodeError, OSError):
            continue
        chars += len(text)
        if baseline is not None:
            old = baseline.LoopGuard(settings.min_repeats, settings.max_cycle_lines)
            baseline_fired += stream(old, text) is not None
        loop = stream(loop_guard.LoopGuard(settings.min_repeats, settings.max_cycle_lines), text)
        if loop is not None:
            fired.append({"file": str(path), "kind": loop.kind, "repeats": loop.repeats, "cycle": loop.cycle[:300],
                          "kept_chars": loop.keep_chars, "file_chars": len(text)})
    seconds = time.perf_counter() - started
    loops = replay_loops(args.loops, settings, baseline) if args.loops else None
    by_suffix: dict[str, list[int]] = {}
    for path in files:
        by_suffix.setdefault(path.suffix, [0, 0])[0] += 1
    for item in fired:
        by_suffix[Path(str(item["file"])).suffix][1] += 1
    summary = {"files": len(files), "chars": chars, "fired": len(fired),
               **({"baseline_fired": baseline_fired} if baseline is not None else {}), "seconds": round(seconds, 1),
               "by_suffix": {k: {"files": v[0], "fired": v[1]} for k, v in sorted(by_suffix.items())},
               "min_repeats": settings.min_repeats, "max_cycle_lines": settings.max_cycle_lines,
               **({"loops": loops} if loops is not None else {})}
    if args.json:
        print(json.dumps({**summary, "firings": fired}, indent=1))
        return
    print(json.dumps(summary))
    for item in fired[: args.show]:
        where = f"cut at {item['kept_chars']}/{item['file_chars']}"
        print(f"--- {item['file']} ({item['kind']} x{item['repeats']}, {where})")
        print(str(item["cycle"]).rstrip()[:300])


if __name__ == "__main__":
    main()
