"""The errors ggroute raises, one small hierarchy.

    GgrouteError                 base: every message says what the user should do
    +-- ConfigError              config.json missing, unreadable, invalid JSON, schema violation
    +-- UsageError               bad request: empty task, unknown model or route name
    |   +-- UnknownModelError
    +-- ModelFileError           model file missing, not GGUF, truncated
    +-- OverBudgetError          a model alone does not fit memory_budget_mb
    +-- ModelLoadError           llama.cpp refused to load a file that looked valid
    +-- PromptTooLongError       prompt tokens + room to generate exceed the context size
    +-- GenerationError          llama.cpp failed while decoding

Only the faces (cli/, the server) translate these into exit codes or HTTP statuses.
"""

from __future__ import annotations


class GgrouteError(Exception):
    """Base class of every error ggroute raises on purpose."""


class ConfigError(GgrouteError):
    """The configuration cannot be used as it is."""


class UsageError(GgrouteError):
    """The request itself is wrong (empty task, unknown name)."""


class UnknownModelError(UsageError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown model '{name}': config.json defines {', '.join(known) or 'no models'}")


class ModelFileError(GgrouteError):
    """A model file is missing or is not a complete GGUF file."""


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


class ModelLoadError(GgrouteError):
    """llama.cpp could not load a model file."""


class PromptTooLongError(GgrouteError):
    def __init__(self, model: str, prompt_tokens: int, context_size: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.context_size = context_size
        super().__init__(
            f"prompt is {prompt_tokens} tokens but model '{model}' has context_size {context_size} "
            "(at least one token must be left to generate): shorten the task or raise context_size"
        )


class GenerationError(GgrouteError):
    """llama.cpp failed while processing a request."""


class PoolBusyError(GgrouteError):
    """The budget is held by models that are generating right now; retry when they finish."""
