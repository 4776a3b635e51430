"""A stub of the Hugging Face Hub's file API on loopback, for tests that must not reach the internet.

It answers what huggingface_hub (2.x) sends for `hf_hub_download`, `get_hf_file_metadata`, `http_get` and
`HfApi.list_repo_files`:

  HEAD/GET /{owner}/{repo}/resolve/{revision}/{path}   ETag, X-Repo-Commit, Content-Length, Accept-Ranges;
                                                        GET honours `Range: bytes=N-` and `bytes=N-M` (206)
  GET /api/models/{owner}/{repo}/tree/{revision}        the files as JSON (one page)
  GET /api/models/{owner}/{repo}[/revision/{revision}]  repository info (HfFileSystem checks the repo with it)
  POST /api/models/{owner}/{repo}/paths-info/{revision} entries of the paths asked for
  errors as the Hub sends them: 401/403/404 with X-Error-Code RepoNotFound, GatedRepo, RevisionNotFound,
  EntryNotFound (huggingface_hub maps those headers to its exception classes)

Faults for tests: `cut_after` (close the connection after that many body bytes of the next GET, once),
`wrong_etag` (announce a checksum the bytes do not have), a gated repo that wants a token.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

_CHUNK = 1 << 20
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_CDN = re.compile(r"^/cdn/([^/]+/[^/]+)/([0-9a-f]{40})/(.+)$")
_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$")
_PATHS_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)/paths-info/([^/]+)$")
_REPO_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$")


@dataclass
class StubFile:
    path: Path  # the bytes served
    sha256: str = ""
    wrong_etag: bool = False  # announce an ETag the bytes do not match

    def __post_init__(self) -> None:
        if not self.sha256:
            digest = hashlib.sha256()
            with self.path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            self.sha256 = digest.hexdigest()

    @property
    def etag(self) -> str:
        return "0" * 64 if self.wrong_etag else self.sha256

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass
class StubRepo:
    files: dict[str, StubFile]
    commit: str = "a" * 40
    branches: dict[str, str] = field(default_factory=dict)  # extra revision names -> commit
    gated_token: str | None = None  # set: a request without `Authorization: Bearer <it>` is refused
    cdn: bool = False  # resolve answers 302 to /cdn/... on another origin (localhost), as the Hub sends LFS files

    def commit_of(self, revision: str) -> str | None:
        if revision in ("main", self.commit):
            return self.commit
        return self.branches.get(revision)


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorized: bool = False  # the request carried an Authorization header


class StubHub:
    def __init__(self) -> None:
        self.repos: dict[str, StubRepo] = {}
        self.requests: list[Request] = []
        self.cut_after: int | None = None  # next GET of a file body: close after this many bytes (once)
        self.throttle_s = 0.0  # pause after each MiB of a file body (a slow link, to interrupt a pull)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> StubHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def body_gets(self) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and "/resolve/" in r.path]


def _entry(name: str, f: StubFile) -> dict[str, object]:
    return {"type": "file", "path": name, "size": f.size, "oid": f.sha256[:40],
            "lfs": {"size": f.size, "oid": f.sha256, "pointerSize": 134}}


def _handler(hub: StubHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(Request(self.command, path, self.headers.get("Range"),
                                        "Authorization" in self.headers))
            if match := _RESOLVE.match(path):
                self._resolve(*match.groups(), body=body)
            elif match := _CDN.match(path):
                self._cdn(*match.groups(), body=body)
            elif match := _TREE.match(path):
                self._tree(match.group(1), match.group(2), match.group(3) or "")
            elif match := _REPO_INFO.match(path):
                self._repo_info(match.group(1), match.group(2) or "main")
            else:
                self._error(404, None, "not found")

        def do_POST(self) -> None:
            path = unquote(urlsplit(self.path).path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            hub.requests.append(Request("POST", path, None))
            if match := _PATHS_INFO.match(path):
                self._paths_info(match.group(1), match.group(2), form.get("paths", []))
            else:
                self._error(404, None, "not found")

        def _repo(self, repo_id: str, revision: str, *, content: bool = False) -> tuple[StubRepo, str] | None:
            """The repository and the commit of `revision`; None once an error is sent. As on the Hub, a gated
            repository's listing and info are public, its files' `content` needs the token."""
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(401, "RepoNotFound", "Repository not found")
                return None
            token_ok = self.headers.get("Authorization") == f"Bearer {repo.gated_token}"
            if content and repo.gated_token is not None and not token_ok:
                status = 403 if self.headers.get("Authorization") else 401
                self._error(status, "GatedRepo", "Access to model is restricted")
                return None
            commit = repo.commit_of(revision)
            if commit is None:
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return None
            return repo, commit

        def _resolve(self, repo_id: str, revision: str, filename: str, body: bool) -> None:
            found = self._repo(repo_id, revision, content=True)
            if found is None:
                return
            repo, commit = found
            stub = repo.files.get(filename)
            if stub is None:
                self._error(404, "EntryNotFound", "Entry not found", commit=commit)
                return
            if repo.cdn:
                port = self.server.server_address[1]
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{port}/cdn/{repo_id}/{commit}/{filename}")
                self.send_header("X-Linked-Etag", f'"{stub.etag}"')
                self.send_header("X-Linked-Size", str(stub.size))
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", '"pointer-etag"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._file(stub, commit, body)

        def _cdn(self, repo_id: str, commit: str, filename: str, body: bool) -> None:
            repo = hub.repos.get(repo_id)
            stub = repo.files.get(filename) if repo is not None and repo.commit == commit else None
            if stub is None:
                self._error(404, None, "no such object")
                return
            self._file(stub, commit, body)

        def _file(self, stub: StubFile, commit: str, body: bool) -> None:
            size, start, end = stub.size, 0, stub.size  # end: exclusive
            requested = self.headers.get("Range")
            ranged = bool(body and requested and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", requested)))
            if ranged:
                start = int(m.group(1))
                end = min(size, int(m.group(2)) + 1) if m.group(2) else size
            if ranged and start >= size:
                self._error(416, None, "Range not satisfiable")
                return
            self.send_response(206 if ranged else 200)
            self.send_header("ETag", f'"{stub.etag}"')
            self.send_header("X-Repo-Commit", commit)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start))
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.end_headers()
            if body:
                try:
                    self._send_body(stub.path, start, end)
                except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a test's Ctrl+C)
                    self.close_connection = True

        def _send_body(self, path: Path, start: int, end: int) -> None:
            limit, hub.cut_after = hub.cut_after, None
            sent = 0
            with path.open("rb") as handle:
                handle.seek(start)
                while chunk := handle.read(min(_CHUNK, end - start - sent)):
                    if limit is not None and sent + len(chunk) > limit:
                        self.wfile.write(chunk[: limit - sent])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.close()  # mid-body: the client sees a short read
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if hub.throttle_s:
                        time.sleep(hub.throttle_s)

        def _tree(self, repo_id: str, revision: str, folder: str) -> None:
            found = self._repo(repo_id, revision)
            if found is None:
                return
            repo, _ = found
            prefix = folder.strip("/") + "/" if folder.strip("/") else ""
            recursive = "recursive=true" in self.path.lower()
            entries, folders = [], set()
            for name, f in sorted(repo.files.items()):
                if not name.startswith(prefix):
                    continue
                rest = name[len(prefix):]
                if "/" in rest and not recursive:
                    folders.add(prefix + rest.split("/", 1)[0])
                    continue
                entries.append(_entry(name, f))
            self._json(200, [{"type": "directory", "path": d, "oid": "0" * 40} for d in sorted(folders)] + entries)

        def _paths_info(self, repo_id: str, revision: str, paths: list[str]) -> None:
            found = self._repo(repo_id, revision)
            if found is None:
                return
            repo, _ = found
            entries: list[dict[str, object]] = [_entry(p, repo.files[p]) for p in paths if p in repo.files]
            folders = {n.rsplit("/", 1)[0] for n in repo.files if "/" in n}
            entries += [{"type": "directory", "path": p, "oid": "0" * 40} for p in paths if p in folders]
            self._json(200, entries)

        def _repo_info(self, repo_id: str, revision: str) -> None:
            found = self._repo(repo_id, revision)
            if found is None:
                return
            repo, commit = found
            self._json(200, {"id": repo_id, "sha": commit, "private": False,
                             "siblings": [{"rfilename": n} for n in sorted(repo.files)]})

        def _json(self, status: int, data: object) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _error(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
            payload = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code is not None:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit is not None:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)) if self.command != "HEAD" else "0")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

    return Handler
