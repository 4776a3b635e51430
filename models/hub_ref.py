"""`hf:` model references: parsing, and choosing a repository's files for a quantization. No network, no
huggingface_hub import (config validation uses this; models/hub.py does the downloading).

    hf:OWNER/REPO/FILE.gguf[@REVISION]     one file (FILE may sit in a folder: hf:OWNER/REPO/DIR/FILE.gguf)
    hf:OWNER/REPO:QUANT[@REVISION]         the file of quantization QUANT (Q4_K_M, IQ4_XS, Q8_0, ...)

A split GGUF model (`NAME-00001-of-00003.gguf`) is named by its first part; every part is downloaded, and
llama.cpp finds the others beside the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HUB_PREFIX = "hf:"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"  # the Hub's rule for an owner or repository name
_REPO = re.compile(rf"({_NAME})/({_NAME})")
_QUANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
SYNTAX = "hf:OWNER/REPO/FILE.gguf or hf:OWNER/REPO:QUANT, optionally followed by @REVISION"


class HubRefError(ValueError):
    """Why a text is not an `hf:` reference (config validation turns it into an error naming the key)."""


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    filename: str | None  # set for hf:OWNER/REPO/FILE.gguf
    quant: str | None  # set for hf:OWNER/REPO:QUANT
    revision: str | None  # None: the default branch

    @property
    def text(self) -> str:
        what = f"/{self.filename}" if self.filename is not None else f":{self.quant}"
        return f"{HUB_PREFIX}{self.repo_id}{what}" + (f"@{self.revision}" if self.revision else "")

    def with_file(self, filename: str) -> HubRef:
        """This reference pinned to one file (what a :QUANT reference resolved to)."""
        return HubRef(self.repo_id, filename, None, self.revision)


def is_hub_ref(value: str) -> bool:
    return value.startswith(HUB_PREFIX)


def parse_hub_ref(value: str) -> HubRef:
    """The parts of an `hf:` reference; HubRefError saying what is wrong otherwise."""
    if not is_hub_ref(value):
        raise HubRefError(f"'{value}' does not start with {HUB_PREFIX}")
    body = value.removeprefix(HUB_PREFIX)
    if body != body.strip() or not body:
        raise HubRefError(f"'{value}' is empty or has spaces around it: expected {SYNTAX}")
    body, at, revision = body.rpartition("@") if "@" in body else (body, "", "")
    if at and (not revision or any(c.isspace() for c in revision)):
        raise HubRefError(f"'{value}' has an empty or invalid revision after '@': expected {SYNTAX}")
    owner, _, rest = body.partition("/")
    repo, sep, tail = rest.partition("/")
    quant = None
    if not sep and ":" in repo:
        repo, _, quant = repo.partition(":")
    if not _REPO.fullmatch(f"{owner}/{repo}"):
        raise HubRefError(f"'{value}' does not name a repository as OWNER/REPO (letters, digits, '.', '-', '_'): "
                          f"expected {SYNTAX}")
    rev = revision or None
    if quant is not None:
        if not _QUANT.fullmatch(quant):
            raise HubRefError(f"'{value}': '{quant}' is not a quantization name such as Q4_K_M: expected {SYNTAX}")
        return HubRef(f"{owner}/{repo}", None, quant, rev)
    if not sep:
        raise HubRefError(f"'{value}' names a repository but no file or quantization: write {HUB_PREFIX}{owner}/"
                          f"{repo}/FILE.gguf or {HUB_PREFIX}{owner}/{repo}:Q4_K_M")
    if not tail.lower().endswith(".gguf") or "//" in tail or tail.startswith("/") or ".." in tail.split("/"):
        raise HubRefError(f"'{value}': '{tail}' is not a .gguf file path in the repository: expected {SYNTAX}")
    split = _SPLIT.search(tail)
    if split is not None and int(split.group(1)) != 1:
        first = tail[: split.start()] + f"-00001-of-{split.group(2)}.gguf"
        raise HubRefError(f"'{value}' names part {int(split.group(1))} of a split model: name its first part, {first}")
    return HubRef(f"{owner}/{repo}", tail, None, rev)


def split_parts(filename: str) -> list[str]:
    """Every part of a split GGUF model named by its first part; [filename] for a whole file."""
    match = _SPLIT.search(filename)
    if match is None:
        return [filename]
    count = int(match.group(2))
    stem = filename[: match.start()]
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def files_for_quant(repo_files: list[str], quant: str, ref_text: str) -> str:
    """The model file (first part of a split model) of quantization `quant` among a repository's files.

    HubRefError when none matches or several models do (the message lists them, to name one as FILE)."""
    pattern = re.compile(rf"(?:^|[-./]){re.escape(quant)}(?:[-.]|$)", re.IGNORECASE)
    candidates = sorted(
        f for f in repo_files
        if f.lower().endswith(".gguf") and pattern.search(f) and not f.rsplit("/", 1)[-1].lower().startswith("mmproj")
    )
    models = sorted({split_parts_first(f) for f in candidates})
    if not models:
        quants = sorted({q for f in repo_files if (q := quant_of(f)) is not None})
        known = f"; its GGUF quantizations: {', '.join(quants)}" if quants else "; it has no .gguf files"
        raise HubRefError(f"{ref_text}: no .gguf file for quantization {quant} in the repository{known}")
    if len(models) > 1:
        raise HubRefError(f"{ref_text}: several files match quantization {quant} ({', '.join(models)}): name one as "
                          f"hf:OWNER/REPO/FILE.gguf")
    return models[0]


def split_parts_first(filename: str) -> str:
    return split_parts(filename)[0]


_QUANT_IN_NAME = re.compile(r"(?:^|[-.])((?:I?Q\d[A-Z0-9_]*)|BF16|F16|F32)(?:[-.]|$)", re.IGNORECASE)


def quant_of(filename: str) -> str | None:
    """The quantization a GGUF file name states (Q4_K_M in Model-Q4_K_M.gguf), upper-cased; None if none."""
    if not filename.lower().endswith(".gguf"):
        return None
    match = _QUANT_IN_NAME.search(filename.rsplit("/", 1)[-1][: -len(".gguf")] + ".")
    return match.group(1).upper() if match else None
