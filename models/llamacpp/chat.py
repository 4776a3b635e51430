"""Turn a task or a conversation into prompt tokens: the GGUF chat template when the model has one, else the
config's completion template (a conversation's messages then become the task, one paragraph each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from ggroute.core.errors import ConfigError
from ggroute.models.backend import Message, Prompt

if TYPE_CHECKING:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from llama_cpp.llama_types import ChatCompletionRequestMessage

    from ggroute.models.llamacpp.model import LlamaModel

PromptKind = Literal["chat", "completion"]


def prompt_kind(model: LlamaModel) -> PromptKind:
    fmt = model.spec.settings.prompt_format
    if fmt == "auto":
        return "chat" if model.spec.info.chat_template else "completion"
    return fmt


def prepare_prompt(model: LlamaModel, task: str) -> Prompt:
    return prepare_conversation(model, [Message("user", task)])


def prepare_raw(model: LlamaModel, text: str) -> Prompt:
    return Prompt(text, model.tokenize(text, add_bos=True, special=False))


def prepare_conversation(model: LlamaModel, conversation: Sequence[Message]) -> Prompt:
    settings = model.spec.settings
    if prompt_kind(model) == "completion":
        task = "\n\n".join(m.content for m in conversation)
        text = settings.completion_template.replace("{task}", task)
        return Prompt(text, model.tokenize(text, add_bos=True, special=False))
    formatter = _chat_formatter(model)
    messages: list[ChatCompletionRequestMessage] = [
        {"role": m.role, "content": m.content} for m in conversation  # type: ignore[misc]
    ]
    if settings.system_prompt and not any(m.role == "system" for m in conversation):
        messages.insert(0, {"role": "system", "content": settings.system_prompt})
    rendered = formatter(messages=messages)
    # The template writes BOS itself when the model wants one (added_special).
    tokens = model.tokenize(rendered.prompt, add_bos=not rendered.added_special, special=True)
    stops = [rendered.stop] if isinstance(rendered.stop, str) else rendered.stop or []
    return Prompt(rendered.prompt, tokens, tuple(s for s in stops if s))


def _chat_formatter(model: LlamaModel) -> Jinja2ChatFormatter:
    if model.chat_formatter is not None:
        return model.chat_formatter
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = model.spec.info.chat_template
    if template is None:
        raise ConfigError(
            f"model '{model.name}' has prompt_format 'chat' but its GGUF has no chat template: "
            "use prompt_format 'completion' with a completion_template"
        )
    llama = model.llama
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_text(llama.token_eos()),
        bos_token=model.token_text(llama.token_bos()),
        add_generation_prompt=True,
    )
    model.chat_formatter = formatter
    return formatter
