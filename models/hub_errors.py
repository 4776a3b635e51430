"""huggingface_hub's and the network's exceptions as ggroute's HubError, each saying what to do (the pull
command, HF_TOKEN, HF_HUB_OFFLINE, free space). An exception nobody expects is re-raised, never dropped."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ggroute.core.errors import HubError, HubUnreachableError, ModelFileError
from ggroute.models.hub_ref import HubRef


def pull_command(ref: HubRef) -> str:
    return f"ggroute pull {ref.text}"


def cache_root() -> Path:
    """The Hugging Face cache folder huggingface_hub uses ($HF_HUB_CACHE, else $HF_HOME/hub, ...)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


@contextmanager
def hub_errors(ref: HubRef, *, downloading: bool = True) -> Iterator[None]:
    """huggingface_hub's and the network's exceptions as HubError, each saying what to do; `downloading` False
    when only a header is read (nothing to resume)."""
    try:
        yield
    except (HubError, ModelFileError):
        raise
    except Exception as exc:  # every failure below is translated or re-raised, never dropped
        translated = _translate(exc, ref, downloading)
        if translated is None:
            raise
        raise translated from None


def _translate(exc: Exception, ref: HubRef, downloading: bool) -> HubError | None:
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, token = ref.repo_id, "set HF_TOKEN to a token that may read it (or run `hf auth login`)"
    message: str | None = None
    if isinstance(exc, GatedRepoError):
        message = (f"{repo} is a gated repository: accept its terms at https://huggingface.co/{repo} with your "
                   f"account, then {token}")
    elif isinstance(exc, RepositoryNotFoundError):
        message = f"repository {repo} is not on the Hub (or it is private: {token}); check the name in {ref.text}"
    elif isinstance(exc, RevisionNotFoundError):
        message = f"revision '{ref.revision}' does not exist in {repo}: name a branch, tag or commit of it"
    elif isinstance(exc, EntryNotFoundError):
        message = f"{repo} has no file {ref.filename or ''} at revision {ref.revision or 'main'}: check the file name"
    elif isinstance(exc, HfHubHTTPError) and exc.response.status_code in (401, 403):
        message = f"the Hub refused access to {repo} (HTTP {exc.response.status_code}): {token}"
    elif isinstance(exc, HfHubHTTPError):
        message = f"the Hub answered HTTP {exc.response.status_code} for {ref.text}: try again later ({exc})"
    elif isinstance(exc, OfflineModeIsEnabled):
        message = f"{ref.text}: offline mode is on (HF_HUB_OFFLINE): unset it, then run `{pull_command(ref)}`"
    elif isinstance(exc, httpx2.TransportError):
        then = ("anything downloaded so far is kept: run the pull again to resume" if downloading else
                "or set HF_HUB_OFFLINE=1 to skip models that are not downloaded")
        return HubUnreachableError(f"cannot reach the Hub at {constants.ENDPOINT} ({type(exc).__name__}: {exc}): "
                                   f"check the network (or HF_ENDPOINT); {then}")
    elif isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        message = (f"the disk is full while downloading {ref.text} into {cache_root()}: the partial file is kept; "
                   "free some space (or point HF_HUB_CACHE at a larger disk) and run the pull again to resume")
    elif isinstance(exc, OSError) and not downloading:
        message = f"reading the header of {ref.text} failed: {exc}"
    elif isinstance(exc, OSError):
        message = f"downloading {ref.text} failed: {exc}; run the pull again to resume"
    elif isinstance(exc, ValueError):  # huggingface_hub's refusals (an invalid repo id, a file too large for HTTP)
        message = f"huggingface_hub refused {ref.text}: {exc}"
    return HubError(message) if message is not None else None

