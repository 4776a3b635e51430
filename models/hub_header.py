"""The GGUF header of an `hf:` model that is not downloaded, read with HTTP Range requests (huggingface_hub's
HfFileSystem) so `ggroute models --plan` can plan it before a multi-gigabyte pull. Only the header's bytes
travel (the metadata and tensor table: a few MB for a large vocabulary), never the weights.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ggroute.core.errors import HubError
from ggroute.models.gguf_info import GGUFInfo, parse_gguf_header
from ggroute.models.hub import log_once, remote_quant_file
from ggroute.models.hub_errors import hub_errors
from ggroute.models.hub_ref import HubRef, split_parts

_BLOCK = 1 << 20  # bytes per ranged read; a header is read in a few of them


def remote_gguf_info(ref: HubRef) -> GGUFInfo:
    """The header facts of the model's file on the Hub (every part of a split model); HubError or
    ModelFileError when it cannot be read or is not GGUF."""
    log_once()
    with hub_errors(ref, downloading=False):
        filename = ref.filename if ref.filename is not None else remote_quant_file(ref)
        infos = [_read_part(ref, part) for part in split_parts(filename)]
    first = infos[0]
    return replace(first, file_size=sum(i.file_size for i in infos), weight_bytes=sum(i.weight_bytes for i in infos),
                   tensor_count=sum(i.tensor_count for i in infos))


def _read_part(ref: HubRef, filename: str) -> GGUFInfo:
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem(skip_instance_cache=True)
    remote = f"{ref.repo_id}/{filename}"
    label = Path(f"hf:{remote}")
    try:
        with fs.open(remote, "rb", revision=ref.revision, block_size=_BLOCK, cache_type="readahead") as handle:
            size = int(handle.size)
            return parse_gguf_header(handle, label, size)
    except FileNotFoundError as exc:  # HfFileSystem's answer for a missing repository, revision or file alike
        raise HubError(f"{ref.text}: cannot read {filename} at revision {ref.revision or 'main'} of {ref.repo_id} "
                       f"({exc}): check the repository, revision and file names (a private repository needs "
                       "HF_TOKEN)") from None
