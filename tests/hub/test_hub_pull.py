"""`hf:` references against the stub Hub: resolution, pull with progress, resume, offline, and what goes wrong."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pytest

from ggroute.core.errors import HubError, ModelFileError, ModelNotDownloadedError
from ggroute.models import hub as hub_module
from ggroute.models.gguf_info import read_gguf_info
from ggroute.models.hub import PARTIAL_SUFFIX, local_model_file, pull
from ggroute.models.hub_ref import parse_hub_ref
from tests.hub.conftest import CDN_REPO, GATED_REPO, GATED_TOKEN, SMOL_FILE, SMOL_REF, SMOL_REPO, SPLIT_REPO, HubEnv
from tests.hub.stub_hub import StubFile


class Recorder:
    """A DownloadProgress that remembers what it was told."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.starts: list[tuple[str, int | None, int]] = []
        self.done = 0
        self.finished = 0
        self.stop_after = stop_after

    def start(self, filename: str, total: int | None, done: int) -> None:
        self.starts.append((filename, total, done))
        self.done = done

    def advance(self, n: int) -> None:
        self.done += n
        if self.stop_after is not None and self.done >= self.stop_after:
            raise KeyboardInterrupt  # what Ctrl+C raises in the main thread mid-transfer

    def finish(self) -> None:
        self.finished += 1


def _partials(env: HubEnv) -> list[Path]:
    return list(env.cache.rglob(f"*{PARTIAL_SUFFIX}"))


def test_pull_downloads_verifies_and_reports_progress(hub_env: HubEnv, smol_stub_file: StubFile) -> None:
    progress = Recorder()
    result = pull(parse_hub_ref(SMOL_REF), progress)
    [pulled] = result.files
    assert pulled.verified == "sha256"
    assert pulled.downloaded_bytes == smol_stub_file.size
    assert progress.starts[0] == (SMOL_FILE, smol_stub_file.size, 0)
    assert progress.done == smol_stub_file.size and progress.finished >= 1
    assert result.model_path.is_relative_to(hub_env.cache)
    assert read_gguf_info(result.model_path).architecture == "llama"
    assert local_model_file(parse_hub_ref(SMOL_REF)) == result.model_path
    assert not _partials(hub_env)


def test_second_pull_downloads_nothing(hub_env: HubEnv) -> None:
    pull(parse_hub_ref(SMOL_REF))
    before = len(hub_env.stub.body_gets())
    [again] = pull(parse_hub_ref(SMOL_REF)).files
    assert again.downloaded_bytes == 0 and again.verified == "cached"
    assert len(hub_env.stub.body_gets()) == before


def test_quant_reference_picks_the_file_online_and_offline(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = parse_hub_ref(f"hf:{SMOL_REPO}:q4_1")
    result = pull(ref)
    assert result.ref.filename == SMOL_FILE
    hub_env.offline(monkeypatch)
    assert local_model_file(ref) == result.model_path


def test_a_connection_cut_mid_body_is_resumed_with_a_range_request(hub_env: HubEnv, smol_stub_file: StubFile) -> None:
    hub_env.stub.cut_after = 25_000_000  # past huggingface_hub's 10 MiB read chunks, so some bytes were written
    [pulled] = pull(parse_hub_ref(SMOL_REF)).files
    first, second = (r.range for r in hub_env.stub.body_gets())
    assert first is None and second is not None
    assert 0 < int(second.removeprefix("bytes=").rstrip("-")) <= 25_000_000
    assert pulled.verified == "sha256" and pulled.size == smol_stub_file.size


def test_ctrl_c_keeps_the_partial_file_and_the_next_pull_resumes(hub_env: HubEnv, smol_stub_file: StubFile) -> None:
    with pytest.raises(KeyboardInterrupt):
        pull(parse_hub_ref(SMOL_REF), Recorder(stop_after=20_000_000))
    [partial] = _partials(hub_env)
    kept = partial.stat().st_size
    assert 0 < kept < smol_stub_file.size
    with pytest.raises(ModelNotDownloadedError):  # a partial file is never a model
        local_model_file(parse_hub_ref(SMOL_REF))
    hub_env.stub.requests.clear()
    [pulled] = pull(parse_hub_ref(SMOL_REF)).files
    assert [r.range for r in hub_env.stub.body_gets()] == [f"bytes={kept}-"]
    assert pulled.downloaded_bytes == smol_stub_file.size - kept and pulled.verified == "sha256"
    assert not _partials(hub_env)


def test_offline_with_a_warm_cache_needs_no_server(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    path = pull(parse_hub_ref(SMOL_REF)).model_path
    hub_env.offline(monkeypatch)
    hub_env.stub.requests.clear()
    assert local_model_file(parse_hub_ref(SMOL_REF)) == path
    assert pull(parse_hub_ref(SMOL_REF)).files[0].verified == "cached"
    assert hub_env.stub.requests == []


def test_offline_with_a_cold_cache_says_how_to_get_the_file(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    hub_env.offline(monkeypatch)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE.*ggroute pull hf:"):
        pull(parse_hub_ref(SMOL_REF))
    with pytest.raises(ModelNotDownloadedError) as caught:
        local_model_file(parse_hub_ref(SMOL_REF))
    assert caught.value.command == f"ggroute pull {SMOL_REF}"


def test_pinned_revision_resolves_through_its_commit(hub_env: HubEnv) -> None:
    path = pull(parse_hub_ref(f"{SMOL_REF}@v1.0")).model_path
    assert "b" * 40 in str(path)


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        ("hf:nobody/No-Such-Repo/x-Q4_1.gguf", HubError, "repository nobody/No-Such-Repo is not on the Hub"),
        (f"hf:{SMOL_REPO}/missing-Q4_1.gguf", HubError, "has no file missing-Q4_1.gguf"),
        (f"{SMOL_REF}@no-such-branch", HubError, "revision 'no-such-branch' does not exist"),
        (f"hf:{GATED_REPO}/Gated-Q4_1.gguf", HubError, "gated repository.*HF_TOKEN"),
        ("hf:corrupt/Corrupt-GGUF/Corrupt-Q4_1.gguf", HubError, "checksum mismatch"),
        (f"hf:{SMOL_REPO}/notes/page-Q8_0.gguf", ModelFileError, "is not a GGUF file"),
        (f"hf:{SMOL_REPO}:Q2_K", HubError, "no .gguf file for quantization Q2_K.*Q4_1"),
    ],
)
def test_hub_failures_are_clear_errors_and_leave_nothing_behind(
    hub_env: HubEnv, ref: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        pull(parse_hub_ref(ref))
    assert not _partials(hub_env)
    assert not list(hub_env.cache.rglob("snapshots/*/*.gguf"))


def test_gated_repository_with_a_token(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    assert pull(parse_hub_ref(f"hf:{GATED_REPO}/Gated-Q4_1.gguf")).files[0].verified == "sha256"


def test_a_redirect_to_a_cdn_is_followed_without_the_token(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", GATED_TOKEN)
    hub_env.stub.cut_after = 25_000_000
    [pulled] = pull(parse_hub_ref(f"hf:{CDN_REPO}/Cdn-Q4_1.gguf")).files
    assert pulled.verified == "sha256"
    cdn = [r for r in hub_env.stub.requests if r.path.startswith("/cdn/")]
    assert len(cdn) == 2 and cdn[1].range is not None  # resumed on the CDN too
    assert not any(r.authorized for r in cdn)
    assert all(r.authorized for r in hub_env.stub.requests if "/resolve/" in r.path)


def test_wrong_token_for_a_gated_repository(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_the_right_one")
    with pytest.raises(HubError, match="gated repository"):
        pull(parse_hub_ref(f"hf:{GATED_REPO}/Gated-Q4_1.gguf"))


def test_unreachable_hub(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", dead + "/{repo_id}/resolve/{revision}/{filename}")
    with pytest.raises(HubError, match="cannot reach the Hub"):
        pull(parse_hub_ref(SMOL_REF))


def test_disk_full_mid_download_keeps_the_partial_for_resume(
    hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch, smol_stub_file: StubFile
) -> None:
    class FillsUp:
        def __init__(self, handle: BinaryIO) -> None:
            self.handle = handle

        def write(self, data: bytes) -> int:
            if self.handle.tell() + len(data) > 15_000_000:  # writes come in 10 MiB chunks
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name: str) -> object:
            return getattr(self.handle, name)

    original = hub_module._open_partial

    @contextmanager
    def full_disk(partial: Path) -> Iterator[FillsUp]:
        with original(partial) as handle:
            yield FillsUp(handle)

    monkeypatch.setattr(hub_module, "_open_partial", full_disk)
    with pytest.raises(HubError, match="disk is full.*partial file is kept"):
        pull(parse_hub_ref(SMOL_REF))
    [partial] = _partials(hub_env)
    assert 0 < partial.stat().st_size <= 15_000_000
    monkeypatch.setattr(hub_module, "_open_partial", original)
    assert pull(parse_hub_ref(SMOL_REF)).files[0].size == smol_stub_file.size


def test_too_little_free_space_is_refused_before_downloading(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000))
    with pytest.raises(HubError, match="MB free: free some space"):
        pull(parse_hub_ref(SMOL_REF))
    assert hub_env.stub.body_gets() == []


def test_split_model_pulls_every_part_and_plans_the_whole(hub_env: HubEnv, split_files: dict[str, StubFile]) -> None:
    result = pull(parse_hub_ref(f"hf:{SPLIT_REPO}:Q8_0"))
    assert [f.filename for f in result.files] == sorted(split_files)
    assert result.model_path.name == "Tiny-Q8_0-00001-of-00002.gguf"
    info = read_gguf_info(result.model_path)
    assert info.file_size == sum(f.size for f in split_files.values()) and info.tensor_count == 4
    result.files[1].path.unlink()  # a part gone from the cache: not a model any more
    with pytest.raises(ModelNotDownloadedError, match="00002-of-00002.gguf"):
        local_model_file(parse_hub_ref(f"hf:{SPLIT_REPO}/Tiny-Q8_0/Tiny-Q8_0-00001-of-00002.gguf"))


def test_catalog_keeps_the_snapshot_name_of_a_split_model(hub_env: HubEnv, tmp_path: Path,
                                                          split_files: dict[str, StubFile]) -> None:
    import json

    from ggroute.models.catalog import ModelCatalog
    from ggroute.models.config import load_config

    pull(parse_hub_ref(f"hf:{SPLIT_REPO}:Q8_0"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"models": {"coder": {"path": f"hf:{SPLIT_REPO}:Q8_0", "context_size": 256,
                                                       "max_tokens": 16}}}), encoding="utf-8")
    spec = ModelCatalog(load_config(config)).spec("coder")
    assert spec.path.name == "Tiny-Q8_0-00001-of-00002.gguf"  # not the hash-named blob: llama.cpp finds part 2
    assert spec.plan.weight_bytes == spec.info.weight_bytes == 4 * 64 * 64 * 4


def test_two_pulls_of_one_file_at_once_download_it_once(hub_env: HubEnv) -> None:
    from concurrent.futures import ThreadPoolExecutor

    hub_env.stub.throttle_s = 0.005
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: pull(parse_hub_ref(SMOL_REF)), range(2)))
    assert results[0].model_path == results[1].model_path
    assert sorted(r.files[0].verified for r in results) == ["cached", "sha256"]
    assert len(hub_env.stub.body_gets()) == 1
