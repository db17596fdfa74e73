"""A small Hugging Face hub on loopback: the few endpoints huggingface-hub's downloads use.

- ``GET /api/models/{owner}/{repo}/tree/{revision}`` — the file listing (``list_repo_tree``);
- ``GET /api/models/{owner}/{repo}`` and ``/revision/{revision}`` — the repo info with its commit sha;
- ``HEAD|GET /{owner}/{repo}/resolve/{revision}/{file}`` — the file, with ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length``, and ``Range`` requests answered with 206, as the hub does.

``drop_after`` makes the first GET of a file close the connection after that many bytes, so a test can see
huggingface-hub resume with a Range request. Point ``HF_ENDPOINT`` at ``server.url``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "5f0c3b1f8d2a4e6b9c7d1e3f5a7b9c1d3e5f7a9b"


@dataclass
class Repo:
    files: dict[str, Path | bytes]  # a file's content, or the path it is streamed from

    def size(self, name: str) -> int:
        content = self.files[name]
        return content.stat().st_size if isinstance(content, Path) else len(content)

    def digest(self, name: str) -> str:
        content = self.files[name]
        if isinstance(content, bytes):
            return hashlib.sha256(content).hexdigest()
        # an ETag only has to identify the content; name + size is enough for a test hub
        return hashlib.sha256(f"{name}:{self.size(name)}".encode()).hexdigest()

    def read(self, name: str, start: int, length: int | None = None) -> bytes:
        content = self.files[name]
        if isinstance(content, bytes):
            return content[start:None if length is None else start + length]
        with content.open("rb") as handle:
            handle.seek(start)
            return handle.read() if length is None else handle.read(length)


@dataclass
class HubState:
    repos: dict[str, Repo]
    drop_after: dict[str, int] = field(default_factory=dict)  # file name -> bytes before the first GET breaks
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range header)


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, Path | bytes]]):
        self.state = HubState({name: Repo(files) for name, files in repos.items()})
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def gets_of(self, name: str) -> list[str | None]:
        """The Range header of every GET of a file (None for a plain GET)."""
        return [range_ for method, path, range_ in self.state.requests if method == "GET" and path.endswith("/" + name)]


class _Handler(BaseHTTPRequestHandler):
    state: HubState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        self.state.requests.append((self.command, path, self.headers.get("Range")))
        tree = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/[^/]+(/.*)?", path)
        info = re.fullmatch(r"/api/models/([^/]+/[^/]+)(/revision/[^/]+)?", path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/[^/]+/(.+)", path)
        if tree:
            return self._json(self._tree(tree.group(1)))
        if info:
            return self._json(self._info(info.group(1)))
        if resolve:
            return self._file(resolve.group(1), resolve.group(2), head)
        self._error(404, "Entry not found")

    def _repo(self, name: str) -> Repo | None:
        return self.state.repos.get(name)

    def _tree(self, name: str):
        repo = self._repo(name)
        if repo is None:
            return None
        return [{"type": "file", "oid": repo.digest(file)[:40], "size": repo.size(file), "path": file,
                 "lfs": {"oid": repo.digest(file), "size": repo.size(file), "pointerSize": 134}}
                for file in sorted(repo.files)]

    def _info(self, name: str):
        repo = self._repo(name)
        if repo is None:
            return None
        return {"id": name, "modelId": name, "sha": COMMIT, "private": False, "gated": False,
                "siblings": [{"rfilename": file} for file in sorted(repo.files)]}

    def _json(self, payload) -> None:
        if payload is None:
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, repo_name: str, file: str, head: bool) -> None:
        repo = self._repo(repo_name)
        if repo is None:
            return self._error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        if file not in repo.files:
            return self._error(404, "Entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        size = repo.size(file)
        start = 0
        range_header = self.headers.get("Range")
        if range_header and not head:
            start = int(re.match(r"bytes=(\d+)-", range_header).group(1))
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{repo.digest(file)}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(size - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        if head:
            return
        drop = self.state.drop_after.pop(file, None)
        if drop is not None:
            self.wfile.write(repo.read(file, start, drop))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(repo.read(file, start))

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
