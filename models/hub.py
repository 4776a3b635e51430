"""Model files from the Hugging Face Hub (`hf:` references), through huggingface_hub and its cache.

Two entry points:
  `local_model_file(ref)`  the file in the Hugging Face cache, never over the network (run, generate, serve)
  `pull(ref, progress)`    download what is missing, verified, then the same file

huggingface_hub does the Hub's side: URLs and HF_ENDPOINT, tokens (HF_TOKEN or `hf auth login`), HF_HUB_OFFLINE,
redirects, HTTP retries and Range resume within a transfer (`http_get`), the cache layout ($HF_HUB_CACHE, else
$HF_HOME/hub) and its refs and snapshot links (`hf_hub_download`). One thing it no longer does: since 2.x it
deletes a partial download when the transfer stops (its temporary file is unique per process), so a Ctrl+C
would lose gigabytes. `pull` therefore has huggingface_hub's `http_get` write into a partial file of its own,
`blobs/ETAG.ggroute-partial` beside the blob, appending from where the last try stopped; the bytes are checked
(size, sha256 against the Hub's ETag, GGUF magic) before the file is renamed to the blob, and
`hf_hub_download` then links it into the snapshot. A file is never in the cache until it is complete and
verified, so nothing half-written is ever loaded.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

from ggroute.core.errors import HubError, ModelFileError, ModelNotDownloadedError
from ggroute.models.gguf_info import GGUF_MAGIC
from ggroute.models.hub_errors import cache_root, hub_errors, pull_command
from ggroute.models.hub_ref import HubRef, HubRefError, files_for_quant, split_parts

PARTIAL_SUFFIX = ".ggroute-partial"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")
_HASH_CHUNK = 8 * 1024 * 1024


class DownloadProgress(Protocol):
    """What a face shows while a file downloads (the CLI: a rich progress bar)."""

    def start(self, filename: str, total: int | None, done: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True)
class PulledFile:
    filename: str
    path: Path
    size: int
    downloaded_bytes: int  # 0: it was in the cache already
    verified: str  # how the bytes were checked: "sha256", "git-sha1", "size only" or "cached"


@dataclass(frozen=True)
class PullResult:
    ref: HubRef  # pinned to the model file (a :QUANT reference resolved)
    files: list[PulledFile]

    @property
    def model_path(self) -> Path:
        """The file llama.cpp opens: the first part of a split model."""
        return self.files[0].path


def log_once() -> None:
    """huggingface_hub prints its warnings (a retried transfer) with its own handler and also passes them to the
    root logger, which a face may have configured too: stop the second copy."""
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.disable_propagation()


def is_offline() -> bool:
    """HF_HUB_OFFLINE is set: huggingface_hub makes no request."""
    from huggingface_hub import constants

    return constants.is_offline_mode()


def local_model_file(ref: HubRef) -> Path:
    """The model's file in the Hugging Face cache (every part of a split model present); no network.

    ModelNotDownloadedError, with the `ggroute pull` command, when it is not there."""
    filename = ref.filename if ref.filename is not None else _cached_quant_file(ref)
    paths = [_cached_path(ref, part) for part in split_parts(filename)]
    missing = [part for part, path in zip(split_parts(filename), paths, strict=True) if path is None]
    if missing:
        raise ModelNotDownloadedError(
            f"model file {ref.text} is not downloaded ({', '.join(missing)} not in the Hugging Face cache "
            f"{cache_root()}): run `{pull_command(ref)}` (or pass --pull to run, generate or serve)",
            command=pull_command(ref),
        )
    first = paths[0]
    assert first is not None  # every part was found above
    return first


def pull(ref: HubRef, progress: DownloadProgress | None = None) -> PullResult:
    """Download the model's file(s) that are not in the cache yet, verified; HubError saying what to do if not."""
    if is_offline():
        try:
            path = local_model_file(ref)
        except ModelNotDownloadedError:
            raise HubError(f"{ref.text}: offline mode is on (HF_HUB_OFFLINE) and the file is not in the cache "
                           f"{cache_root()}: unset HF_HUB_OFFLINE and run `{pull_command(ref)}` with network "
                           "access") from None
        pinned = ref if ref.filename is not None else ref.with_file(_cached_quant_file(ref))
        parts = split_parts(pinned.filename or "")
        return PullResult(pinned, [_cached(p, path.with_name(Path(p).name)) for p in parts])
    with hub_errors(ref):
        filename = ref.filename if ref.filename is not None else remote_quant_file(ref)
        pinned = ref.with_file(filename)
        files = [_pull_file(pinned, part, progress) for part in split_parts(filename)]
    return PullResult(pinned, files)


def _cached(filename: str, path: Path) -> PulledFile:
    return PulledFile(filename, path, path.stat().st_size, 0, "cached")


def _cached_path(ref: HubRef, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(ref.repo_id, filename, revision=ref.revision)
    return Path(found) if isinstance(found, str) else None


def _cached_quant_file(ref: HubRef) -> str:
    """The :QUANT file among those of the cached snapshot of ref.revision (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(ref.repo_id, revision=ref.revision, local_files_only=True))
    except LocalEntryNotFoundError:
        raise ModelNotDownloadedError(
            f"model {ref.text} is not downloaded (no snapshot of {ref.repo_id} in the Hugging Face cache "
            f"{cache_root()}): run `{pull_command(ref)}` (or pass --pull to run, generate or serve)",
            command=pull_command(ref),
        ) from None
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*.gguf")]
    try:
        return files_for_quant(files, ref.quant or "", ref.text)
    except HubRefError as exc:
        raise ModelNotDownloadedError(f"{exc} (looked in the cached snapshot {folder}): run "
                                      f"`{pull_command(ref)}`", command=pull_command(ref)) from None


def remote_quant_file(ref: HubRef) -> str:
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(ref.repo_id, revision=ref.revision)
    try:
        return files_for_quant(files, ref.quant or "", ref.text)
    except HubRefError as exc:
        raise HubError(str(exc)) from None


def _pull_file(ref: HubRef, filename: str, progress: DownloadProgress | None) -> PulledFile:
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import WeakFileLock  # type: ignore[attr-defined]  # exported lazily

    cached = _cached_path(ref, filename)
    url = hf_hub_url(ref.repo_id, filename, revision=ref.revision)
    meta = get_hf_file_metadata(url)
    if meta.etag is None or meta.commit_hash is None:
        raise HubError(f"{ref.text}: the server at {constants.ENDPOINT} sent no ETag or X-Repo-Commit for {filename}: "
                       "it does not act as the Hugging Face Hub (check HF_ENDPOINT)")
    if cached is not None and cached.resolve().name == meta.etag:
        return _cached(filename, cached)
    blobs = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=ref.repo_id, repo_type="model") / "blobs"
    blob = blobs / meta.etag
    downloaded, verified = 0, "cached"
    if not blob.exists():
        blobs.mkdir(parents=True, exist_ok=True)
        partial = blob.with_name(blob.name + PARTIAL_SUFFIX)
        with WeakFileLock(str(partial) + ".lock"):  # another pull of this file appends to the same partial
            if not blob.exists():  # that other pull may have finished it while this one waited
                downloaded = _download(meta.location, partial, meta.size, filename, progress,
                                       with_token=_origin(meta.location) == _origin(url))
                verified = _verify(partial, meta.etag, ref, filename)
                os.replace(partial, blob)
    bar = _bar_class(filename, progress) if progress is not None else None
    path = Path(hf_hub_download(ref.repo_id, filename, revision=ref.revision, tqdm_class=bar))
    return PulledFile(filename, path, path.stat().st_size, downloaded, verified)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _download(url: str, partial: Path, size: int | None, filename: str, progress: DownloadProgress | None, *,
              with_token: bool) -> int:
    """Append the rest of the file to `partial` (huggingface_hub's http_get resumes with a Range request);
    the number of bytes this call wrote. The partial file stays when the transfer stops, for the next pull.
    `with_token`: send the Hub token; not to a CDN the Hub redirected to (its URL is signed, as
    huggingface_hub does it)."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # exported lazily

    headers: dict[str, str] = build_hf_headers()
    if not with_token:
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have > size:  # not a prefix of this file (the Hub changed it): start over
        partial.unlink()
        have = 0
    if size is not None:
        _check_free_space(partial.parent, size - have, filename)
    with _open_partial(partial) as handle:
        http_get(url, handle, resume_size=have, headers=headers, expected_size=size,
                 displayed_filename=filename, tqdm_class=_bar_class(filename, progress) if progress else None)
    return partial.stat().st_size - have


@contextmanager
def _open_partial(partial: Path) -> Iterator[BinaryIO]:
    """The partial file, opened to append (a seam for tests that fill the disk)."""
    with partial.open("ab") as handle:
        yield handle


def _check_free_space(folder: Path, needed: int, filename: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise HubError(f"{filename} needs {needed / 1e6:,.0f} MB more but {folder} has {free / 1e6:,.0f} MB free: "
                       "free some space (or point HF_HUB_CACHE at a larger disk) and run the pull again")


def _verify(partial: Path, etag: str, ref: HubRef, filename: str) -> str:
    """Check the downloaded bytes; a file that fails is deleted (it would fail again on resume)."""
    with partial.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        partial.unlink()
        raise ModelFileError(f"{ref.text}: {filename} is not a GGUF file (it starts with {magic!r}, expected "
                             "b'GGUF'): the download was discarded; name a .gguf model file of the repository")
    if _SHA256.fullmatch(etag):
        kind, digest = "sha256", _digest(partial, hashlib.sha256())
    elif _GIT_SHA1.fullmatch(etag):
        header = f"blob {partial.stat().st_size}\0".encode()
        kind, digest = "git-sha1", _digest(partial, hashlib.sha1(header, usedforsecurity=False))
    else:
        return "size only"
    if digest != etag:
        partial.unlink()
        raise HubError(f"{ref.text}: checksum mismatch for {filename} ({kind} {digest}, the Hub says {etag}): the "
                       f"download was discarded; run `{pull_command(ref)}` again")
    return kind


def _digest(path: Path, hasher: hashlib._Hash) -> str:
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _bar_class(filename: str, progress: DownloadProgress) -> type:
    """A tqdm stand-in for huggingface_hub's progress calls, forwarding to `progress`."""

    class _Bar:
        def __init__(self, *, total: int | None = None, initial: int = 0, **_: object) -> None:
            progress.start(filename, total, initial)

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

        def update(self, n: int | None = 1) -> None:
            progress.advance(n or 0)

        def close(self) -> None:
            progress.finish()

    return _Bar
