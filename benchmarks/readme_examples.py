"""Run the README's `ggroute run` / `ggroute generate` examples one by one, as a new user would, and report how
each generation ended (issue 11: every example must end with `stop` or `repetition`, none at `max_tokens`).

    python benchmarks/readme_examples.py [--readme README.md]

Each example line is taken from the README's code blocks (the text before `#`), run with `--json` added (and
`--code` dropped, so the whole answer is reported) one after another; stdin examples (`echo ... |`) get their
text on stdin. Run it on an idle machine: two llama.cpp processes on 2 cores slow each other down badly.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

EXAMPLE = re.compile(r"^(?:echo (?P<stdin>\"[^\"]*\"|'[^']*') \| )?(?P<command>ggroute (?:run|generate) .*)$")


def examples(readme: Path) -> list[tuple[list[str], str | None]]:
    """(argv, stdin) of each `ggroute run|generate` line in the README's code blocks."""
    found = []
    in_code = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        command = line.split("  #", 1)[0].split(" > ", 1)[0].strip()  # no comment, no output redirection
        match = EXAMPLE.match(command) if in_code else None
        if match is not None:
            argv = [arg for arg in shlex.split(match["command"]) if arg != "--code"]
            found.append((argv, shlex.split(match["stdin"])[0] if match["stdin"] else None))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parent.parent / "README.md")
    args = parser.parse_args()
    rows = []
    for argv, stdin in examples(args.readme):
        command = [sys.executable, "-m", "ggroute.cli", *argv[1:], *([] if "--json" in argv else ["--json"])]
        # `echo` ends its text with a newline, and the model sees it: send exactly what the shell would
        done = subprocess.run(command, input=None if stdin is None else stdin + "\n", capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            rows.append({"example": shlex.join(argv), "exit": done.returncode, "stderr": done.stderr[-400:]})
        else:
            payload = json.loads(done.stdout)
            rows.append({"example": shlex.join(argv), "route": payload.get("route"), "model": payload["model"],
                         "finish_reason": payload["finish_reason"],
                         "completion_tokens": payload["usage"]["completion_tokens"],
                         "decode_tokens_per_s": payload["timings"]["decode_tokens_per_s"],
                         "wall_s": payload["timings"]["wall_s"]})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| example | route / model | finish | tokens | wall |\n|---|---|---|---|---|")
    for row in rows:
        if "exit" in row:
            print(f"| `{row['example']}` | exit {row['exit']} | | | |")
        else:
            print(f"| `{row['example']}` | {row['route'] or '-'} / {row['model']} | {row['finish_reason']} | "
                  f"{row['completion_tokens']} | {row['wall_s']:.1f} s |")
    bad = [row for row in rows if row.get("finish_reason") not in ("stop", "repetition")]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
