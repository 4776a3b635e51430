"""The exit codes of `ggroute`, and the one table that maps an error to its code.

    0    done (finish_reason stop or length)
    1    runtime error: model file, load, memory budget, llama.cpp, a failed suite case
    2    bad config or usage: ConfigError, UsageError and its subclasses (click's own usage errors exit 2 too)
    3    the request timed out (partial output kept)
    130  interrupted (Ctrl+C, SIGINT): partial output kept, the request logged with finish_reason "cancelled"
    143  terminated (SIGTERM): handled exactly as Ctrl+C (cli/signals.py), only the code differs

Commands raise 130 for both signals; main() turns it into 128 + the number of the signal that came first.
"""

from __future__ import annotations

from ggroute.core.errors import ConfigError, GgrouteError, UsageError

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM; see cli/signals.py

# Error class -> exit code. A class not listed takes the code of its nearest listed base (see exit_code_for).
EXIT_CODE_BY_ERROR: dict[type[GgrouteError], int] = {
    ConfigError: EXIT_USAGE,
    UsageError: EXIT_USAGE,
    GgrouteError: EXIT_RUNTIME,
}


def exit_code_for(exc: GgrouteError) -> int:
    """The exit code of `exc`: the entry of its own class, else of its nearest base class in the table."""
    for cls in type(exc).__mro__:
        code = EXIT_CODE_BY_ERROR.get(cls)
        if code is not None:
            return code
    return EXIT_RUNTIME
