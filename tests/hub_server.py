"""A local server that speaks the HuggingFace Hub HTTP protocol, for offline tests.

It lets the *unmodified* ``huggingface_hub`` / ``datasets`` / ``timm`` / ``transformers`` clients create
repos, commit (regular files inline, large/binary files through the Git LFS "basic" transfer), branch,
tag, list and download, with no network. Standard library only (PyYAML is used when importable, to
validate README metadata and fill ``cardData`` like the real Hub does).

Model:
    - a repo holds refs (``refs/heads/main``, ``refs/tags/v1``, ``refs/pr/1``) pointing at immutable
      commits; a commit is a full snapshot ``{path: FileEntry}`` plus its parent;
    - file contents are stored once, content-addressed by sha256, under ``<root>/blobs``;
    - git object ids are real: ``sha1("blob <size>\\0" + content)``, or of the LFS pointer for LFS files.

Test helpers on :class:`HubServer`: ``reset()``, ``fail(method, pattern, status, times)`` to inject
faults, ``requests`` (method, path, status log), ``count(method, pattern)``, ``unhandled`` (routes the
clients called that the server does not know: also printed to stderr), ``blocked`` (requests meant for
a non-loopback host that reached the server because it doubles as the HTTP(S) proxy of the clients,
see ``conftest_hub``), ``read_file(...)`` and ``list_files(...)`` to inspect what was committed.

Xet storage is not implemented: clients must run with ``HF_HUB_DISABLE_XET=1`` (the server never
sends ``X-Xet-*`` headers, so downloads use plain HTTP anyway).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

# Files uploaded through LFS, as the default `.gitattributes` of a new Hub repo would route them.
LFS_SUFFIXES = (
    ".parquet",
    ".arrow",
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".npy",
    ".npz",
    ".pkl",
    ".pickle",
    ".zip",
    ".gz",
    ".tar",
    ".zst",
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
)
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", None: "model"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """Git object id of a blob with this content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def front_matter(text: str) -> tuple[str | None, str | None]:
    """(yaml text, error) of a README's ``---`` metadata block; (None, None) when it has none."""
    if not text.startswith("---"):
        return None, None
    lines = text.splitlines()
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            return "\n".join(lines[1:i]), None
    return None, "The YAML metadata block is not closed with '---'"


def parse_card_yaml(text: str) -> tuple[dict | None, str | None]:
    """(metadata dict, error) of a README; the dict is None when PyYAML is missing or there is no block."""
    block, error = front_matter(text)
    if block is None or error:
        return None, error
    try:
        import yaml
    except ImportError:
        return None, None
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        return None, f"Invalid YAML in README.md metadata: {exc}"
    if data is not None and not isinstance(data, dict):
        return None, "README.md metadata must be a YAML mapping"
    return data or {}, None


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int
    oid: str  # git blob id (of the content, or of the LFS pointer)
    lfs: bool

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))


@dataclass
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    author: str
    date: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    type: str
    id: str
    owner: str
    private: bool
    created: str
    refs: dict[str, str] = field(default_factory=dict)  # full ref name -> commit id
    commits: dict[str, Commit] = field(default_factory=dict)
    num_prs: int = 0

    def resolve(self, rev: str) -> Commit | None:
        """Commit of a branch, tag, ``refs/...`` name or (short) commit id."""
        for ref in (f"refs/heads/{rev}", f"refs/tags/{rev}", rev):
            if ref.startswith("refs/") and ref in self.refs:
                return self.commits[self.refs[ref]]
        if re.fullmatch(r"[0-9a-f]{7,40}", rev):
            found = [c for cid, c in self.commits.items() if cid.startswith(rev)]
            if len(found) == 1:
                return found[0]
        return None

    def history(self, commit: Commit):
        while commit is not None:
            yield commit
            commit = self.commits.get(commit.parent) if commit.parent else None


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int
    times: int
    message: str


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # bytes, or JSON-serialisable
    headers: dict[str, str] = field(default_factory=dict)


class HubError(Exception):
    """An error reply; ``code`` goes to ``X-Error-Code``, which the clients map to exception types."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def reply(self) -> Reply:
        headers = {"X-Error-Message": self.message.replace("\n", " ")[:500], **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return Reply(self.status, {"error": self.message}, headers)


class HubState:
    """Repos, blobs, request log and injected faults. All mutations hold ``lock``."""

    def __init__(self, root: Path, tokens: dict[str, str]):
        self.root, self.tokens = root, tokens
        self.lock = threading.RLock()
        self.page_size = 1000
        self.reset()

    def reset(self) -> None:
        with self.lock:
            shutil.rmtree(self.root / "blobs", ignore_errors=True)
            (self.root / "blobs").mkdir(parents=True)
            self.repos: dict[tuple[str, str], Repo] = {}
            self.faults: list[Fault] = []
            self.requests: deque[tuple[str, str, int]] = deque(maxlen=20000)
            self.unhandled: list[str] = []
            self.blocked: list[str] = []

    # -- blobs ---------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.exists():
            tmp = path.with_suffix(f".tmp{uuid.uuid4().hex}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    # -- repos and commits -----------------------------------------------------------------
    def create_repo(self, repo_type: str, repo_id: str, owner: str, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, owner, private, _now())
        self.repos[(repo_type, repo_id)] = repo
        sha = self.put_blob(GITATTRIBUTES)
        entry = FileEntry(sha, len(GITATTRIBUTES), git_blob_oid(GITATTRIBUTES), lfs=False)
        self.add_commit(repo, "refs/heads/main", None, "initial commit", "", owner, {".gitattributes": entry})
        return repo

    def add_commit(self, repo, ref, parent, title, message, author, files) -> Commit:
        cid = hashlib.sha1(f"{repo.id}{parent}{title}{time.time_ns()}{uuid.uuid4()}".encode()).hexdigest()
        commit = Commit(cid, parent.id if parent else None, title, message, author, _now(), files)
        repo.commits[cid] = commit
        repo.refs[ref] = cid
        return commit

    # -- test helpers ----------------------------------------------------------------------
    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method in (method, "*") and fault.pattern.search(path):
                fault.times -= 1
                return fault
        return None


class HubHandler(BaseHTTPRequestHandler):
    """One request: read the body, find the route, reply (routes are in ``ROUTES`` below)."""

    protocol_version = "HTTP/1.1"
    server: _Server

    # -- plumbing --------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def do_CONNECT(self) -> None:  # an https request to a non-loopback host, sent to us as proxy
        self._block(f"CONNECT {self.path}")

    def _block(self, what: str) -> None:
        self.state.blocked.append(what)
        self.close_connection = True
        self._send(HubError(403, f"hub_server: blocked non-loopback request {what}").reply())

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        raw_path, _, query = self.path.partition("?")
        if not raw_path.startswith("/"):  # absolute URI => we are being used as a proxy
            self._read_body()
            return self._block(f"{self.command} {self.path}")
        self.query = {k: v[-1] for k, v in parse_qs(query).items()}
        self.body = self._read_body()
        self.user = self._authenticate()
        try:
            fault = self.state.take_fault(self.command, raw_path)
            if fault is not None:
                raise HubError(fault.status, fault.message)
            if self.user is False:
                raise HubError(401, "Invalid credentials in Authorization header")
            reply = self._route(raw_path)
        except HubError as err:
            reply = err.reply()
        except Exception as exc:  # noqa: BLE001 - a server bug or an unknown payload: fail loudly, no retries
            line = f"ERROR {self.command} {raw_path}: {exc!r}"
            self.state.unhandled.append(line)
            print(f"[hub_server] {line}", file=sys.stderr)
            traceback.print_exc()
            reply = HubError(501, f"hub_server internal error: {exc!r}").reply()
        self.state.requests.append((self.command, raw_path, reply.status))
        self._send(reply)

    def _route(self, raw_path: str) -> Reply:
        for methods, regex, fn in ROUTES:
            match = regex.match(raw_path)
            if match and self.command in methods:
                args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                with self.state.lock:
                    return fn(self, **args)
        line = f"{self.command} {raw_path}"
        self.state.unhandled.append(line)
        print(f"[hub_server] unhandled route: {line}", file=sys.stderr)
        raise HubError(404, f"hub_server: unhandled route {line}")

    def _send(self, reply: Reply) -> None:
        body = reply.body
        headers = dict(reply.headers)
        if not isinstance(body, bytes):
            body = b"" if body is None else json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.send_response(reply.status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authenticate(self) -> str | None | bool:
        """User name of the bearer token; None when anonymous; False for an unknown token."""
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        return self.state.tokens.get(auth[7:].strip(), False)

    def _json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from exc

    # -- repo lookup -----------------------------------------------------------------------
    def _repo(self, t: str | None, ns: str, name: str, write: bool = False) -> Repo:
        repo = self.state.repos.get((REPO_TYPES[t], f"{ns}/{name}"))
        if repo is None or (repo.private and self.user != repo.owner):
            raise HubError(404 if self.user else 401, "Repository not found", "RepoNotFound")
        if write and self.user != repo.owner:
            raise HubError(403 if self.user else 401, "You don't have the rights to write to this repo")
        return repo

    def _commit(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _url(self, repo: Repo, *parts: str) -> str:
        return "/".join([self.endpoint, URL_PREFIX[repo.type] + repo.id, *parts])

    # -- file and tree JSON ----------------------------------------------------------------
    def _last_commit(self, repo: Repo, commit: Commit, path: str) -> dict:
        def signature(c: Commit):
            return c.files.get(path) or sorted((k, v) for k, v in c.files.items() if k.startswith(path + "/"))

        sig, last = signature(commit), commit
        for older in repo.history(commit):
            if signature(older) != sig:
                break
            last = older
        return {"id": last.id, "title": last.title, "date": last.date}

    def _path_json(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict | None:
        entry = commit.files.get(path)
        if entry is not None:
            out = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
            if entry.lfs:
                out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
            if expand:
                scan = {"virusFound": False, "virusNames": None}
                out["securityFileStatus"] = {"status": "safe", "avScan": scan, "pickleImportScan": None}
        else:
            children = sorted((k, v.oid) for k, v in commit.files.items() if k.startswith(path + "/"))
            if not children:
                return None
            tree_oid = hashlib.sha1(repr(children).encode()).hexdigest()
            out = {"type": "directory", "oid": tree_oid, "size": 0, "path": path}
        if expand:
            out["lastCommit"] = self._last_commit(repo, commit, path)
        return out

    def _children(self, commit: Commit, folder: str, recursive: bool) -> list[str]:
        prefix = folder + "/" if folder else ""
        out = set()
        for path in commit.files:
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            if recursive:
                out.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
            else:
                out.add(prefix + parts[0])
        return sorted(out)

    def _paginate(self, items: list, render: Callable[[Any], dict], page_size: int) -> Reply:
        """One page of ``render(item)``, with a ``Link: <...cursor=...>; rel="next"`` header as the Hub sends."""
        start = int(self.query.get("cursor", 0))
        headers = {}
        if start + page_size < len(items):
            query = urlencode({**self.query, "cursor": start + page_size})
            headers["Link"] = f'<{self.endpoint}{self.path.partition("?")[0]}?{query}>; rel="next"'
        return Reply(200, [render(item) for item in items[start : start + page_size]], headers)

    # -- routes: account and repos ---------------------------------------------------------
    def whoami(self) -> Reply:
        if not self.user:
            raise HubError(401, "Invalid credentials in Authorization header")
        token = {"displayName": "hub_server", "role": "write", "createdAt": _now()}
        return Reply(
            200,
            {
                "type": "user",
                "id": self.user,
                "name": self.user,
                "fullname": self.user,
                "email": None,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": token},
            },
        )

    def create_repo(self) -> Reply:
        if not self.user:
            raise HubError(401, "You must be authenticated to create a repo")
        data = self._json()
        owner = data.get("organization") or self.user
        if owner != self.user:
            raise HubError(403, f"You don't have the rights to create a repo under '{owner}'")
        repo_type = data.get("type") or "model"
        repo_id = f"{owner}/{data['name']}"
        private = data.get("visibility", "private" if data.get("private") else "public") != "public"
        url = f"{self.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.state.repos:
            message = f"You already created this {repo_type} repo"
            return Reply(409, {"error": message, "url": url}, {"X-Error-Message": message})
        self.state.create_repo(repo_type, repo_id, owner, private)
        return Reply(200, {"url": url, "name": repo_id, "id": repo_id})

    def delete_repo(self) -> Reply:
        data = self._json()
        ns = data.get("organization") or self.user or ""
        repo = self._repo((data.get("type") or "model") + "s", ns, data["name"], write=True)
        del self.state.repos[(repo.type, repo.id)]
        return Reply(200, {})

    def list_repos(self, t: str) -> Reply:
        author, search = self.query.get("author"), self.query.get("search", "")
        repos = [
            {"id": r.id, "author": r.owner, "private": r.private, "sha": r.refs["refs/heads/main"]}
            for (rt, _), r in self.state.repos.items()
            if rt == REPO_TYPES[t]
            and (not r.private or r.owner == self.user)
            and (author is None or r.owner == author)
            and search in r.id
        ]
        return Reply(200, repos)

    def repo_info(self, t: str, ns: str, name: str, rev: str = "main") -> Reply:
        repo = self._repo(t, ns, name)
        commit = self._commit(repo, rev)
        siblings = []
        for path, e in sorted(commit.files.items()):
            sib: dict[str, Any] = {"rfilename": path}
            if self.query.get("blobs", "").lower() == "true":
                sib.update(size=e.size, blobId=e.oid)
                if e.lfs:
                    sib["lfs"] = {"size": e.size, "sha256": e.sha256, "pointerSize": e.pointer_size}
            siblings.append(sib)
        info = {
            "_id": repo.id,
            "id": repo.id,
            "author": repo.owner,
            "sha": commit.id,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": repo.created,
            "lastModified": commit.date,
            "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.files.values()),
        }
        if repo.type == "model":
            info["modelId"] = repo.id
        if "README.md" in commit.files:
            readme = self.state.blob_path(commit.files["README.md"].sha256).read_text("utf-8", "replace")
            card, _ = parse_card_yaml(readme)
            if card is not None:
                info["cardData"] = card
        return Reply(200, info)

    def settings(self, t: str, ns: str, name: str) -> Reply:
        repo = self._repo(t, ns, name, write=True)
        data = self._json()
        if "visibility" in data or "private" in data:
            repo.private = data.get("visibility", "private" if data.get("private") else "public") != "public"
        return Reply(200, {})

    def validate_yaml(self) -> Reply:
        content = self._json().get("content", "")
        _, error = parse_card_yaml(content)
        if error:
            return Reply(400, {"errors": [{"message": error}], "warnings": []})
        block, _ = front_matter(content)
        warnings = [] if block else [{"message": "Empty or missing yaml metadata in repo card"}]
        return Reply(200, {"errors": [], "warnings": warnings})

    # -- routes: refs ----------------------------------------------------------------------
    def refs(self, t: str, ns: str, name: str) -> Reply:
        repo = self._repo(t, ns, name)
        out: dict[str, list] = {"branches": [], "tags": [], "converts": [], "pullRequests": []}
        kinds = {"heads": "branches", "tags": "tags", "convert": "converts", "pr": "pullRequests"}
        for ref, cid in sorted(repo.refs.items()):
            kind, ref_name = ref.split("/", 2)[1:]
            out[kinds[kind]].append({"name": ref_name, "ref": ref, "targetCommit": cid})
        if not self.query.get("include_prs"):
            del out["pullRequests"]
        return Reply(200, out)

    def _create_ref(self, repo: Repo, ref: str, start: str) -> Reply:
        if ref in repo.refs:
            raise HubError(409, f"Reference already exists: {ref}")
        repo.refs[ref] = self._commit(repo, start).id
        return Reply(200, {})

    def _delete_ref(self, repo: Repo, ref: str) -> Reply:
        if ref == "refs/heads/main":
            raise HubError(403, "Cannot delete the default branch")
        if repo.refs.pop(ref, None) is None:
            raise HubError(404, f"Invalid rev id: {ref}", "RevisionNotFound")
        return Reply(200, {})

    def branch(self, t: str, ns: str, name: str, rev: str) -> Reply:
        repo = self._repo(t, ns, name, write=True)
        if self.command == "DELETE":
            return self._delete_ref(repo, f"refs/heads/{rev}")
        if rev.startswith("refs/") or not re.fullmatch(r"[\w.\-/]+", rev):
            raise HubError(400, f"Invalid reference for a branch: {rev}")
        return self._create_ref(repo, f"refs/heads/{rev}", self._json().get("startingPoint") or "main")

    def tag(self, t: str, ns: str, name: str, rev: str) -> Reply:
        repo = self._repo(t, ns, name, write=True)
        if self.command == "DELETE":
            return self._delete_ref(repo, f"refs/tags/{rev}")
        return self._create_ref(repo, f"refs/tags/{self._json()['tag']}", rev)

    def commits(self, t: str, ns: str, name: str, rev: str) -> Reply:
        repo = self._repo(t, ns, name)

        def render(c: Commit) -> dict:
            return {"id": c.id, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": c.author}]}

        return self._paginate(list(repo.history(self._commit(repo, rev))), render, min(self.state.page_size, 50))

    # -- routes: listing -------------------------------------------------------------------
    def tree(self, t: str, ns: str, name: str, rev: str, path: str = "") -> Reply:
        repo = self._repo(t, ns, name)
        commit = self._commit(repo, rev)
        path = path.strip("/")
        if path and (path in commit.files or not self._children(commit, path, False)):
            raise HubError(404, f"Folder not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.id})
        expand = self.query.get("expand", "").lower() == "true"
        recursive = self.query.get("recursive", "").lower() == "true"
        page_size = min(self.state.page_size, 50) if expand else self.state.page_size
        children = self._children(commit, path, recursive)
        return self._paginate(children, lambda p: self._path_json(repo, commit, p, expand), page_size)

    def paths_info(self, t: str, ns: str, name: str, rev: str) -> Reply:
        repo = self._repo(t, ns, name)
        commit = self._commit(repo, rev)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            data = self._json()
        else:
            data = parse_qs(self.body.decode())
            data["expand"] = (data.get("expand") or ["false"])[-1]
        expand = str(data.get("expand", "false")).lower() == "true"
        found = [self._path_json(repo, commit, p.strip("/"), expand) for p in data.get("paths", [])]
        return Reply(200, [f for f in found if f is not None])

    # -- routes: upload --------------------------------------------------------------------
    def preupload(self, t: str, ns: str, name: str, rev: str) -> Reply:
        repo = self._repo(t, ns, name, write=True)
        commit = self._commit(repo, "main" if self.query.get("create_pr") else rev)
        files = []
        for f in self._json().get("files", []):
            existing = commit.files.get(f["path"])
            sample = base64.b64decode(f.get("sample", ""))
            lfs = (
                existing.lfs
                if existing
                else f["path"].lower().endswith(LFS_SUFFIXES) or f["size"] > LFS_SIZE_THRESHOLD or b"\0" in sample
            )
            oid = None if existing is None else existing.sha256 if existing.lfs else existing.oid
            mode = "lfs" if lfs else "regular"
            files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return Reply(200, {"files": files, "commitOid": commit.id})

    def lfs_batch(self, ns: str, name: str, t: str | None = None) -> Reply:
        self._repo(t, ns, name, write=True)
        data = self._json()
        if data.get("operation") != "upload":
            raise HubError(400, "hub_server only implements LFS uploads (downloads go through /resolve)")
        objects = []
        for obj in data.get("objects", []):
            out = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            path = self.state.blob_path(obj["oid"])
            if not (path.exists() and path.stat().st_size == obj["size"]):
                out["actions"] = {
                    "upload": {"href": f"{self.endpoint}/__lfs__/{obj['oid']}"},
                    "verify": {"href": f"{self.endpoint}/__lfs__/verify/{obj['oid']}"},
                }
            objects.append(out)
        return Reply(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_put(self, oid: str) -> Reply:
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match its sha256 {oid}")
        self.state.put_blob(self.body)
        return Reply(200, b"")

    def lfs_verify(self, oid: str) -> Reply:
        path, data = self.state.blob_path(oid), self._json()
        if not path.exists() or path.stat().st_size != data.get("size"):
            raise HubError(404, f"LFS object {oid} was not uploaded")
        return Reply(200, {})

    def commit(self, t: str, ns: str, name: str, rev: str) -> Reply:
        repo = self._repo(t, ns, name, write=True)
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        create_pr = bool(self.query.get("create_pr"))
        if create_pr:
            base, ref = self._commit(repo, rev), f"refs/pr/{repo.num_prs + 1}"
        else:
            ref = rev if rev.startswith("refs/pr/") else f"refs/heads/{rev}"
            if ref not in repo.refs:
                raise HubError(404, f"Invalid rev id: {rev} (commits go to a branch or a PR ref)", "RevisionNotFound")
            base = repo.commits[repo.refs[ref]]
        parent = header.get("parentCommit")
        if parent and not base.id.startswith(parent):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(base.files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                content = value["content"]
                data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                files[value["path"]] = FileEntry(self.state.put_blob(data), len(data), git_blob_oid(data), lfs=False)
            elif key == "lfsFile":
                blob = self.state.blob_path(value["oid"])
                if not blob.exists():
                    raise HubError(400, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                size = blob.stat().st_size
                pointer_oid = git_blob_oid(lfs_pointer(value["oid"], size))
                files[value["path"]] = FileEntry(value["oid"], size, pointer_oid, lfs=True)
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {k: v for k, v in files.items() if not k.startswith(prefix)}
            elif key != "header":
                raise HubError(400, f"hub_server: unsupported commit operation {key!r}")
        if create_pr:
            repo.num_prs += 1
        commit = self.state.add_commit(
            repo, ref, base, header.get("summary", ""), header.get("description", ""), self.user, files
        )
        out = {"success": True, "commitOid": commit.id, "commitUrl": self._url(repo, "commit", commit.id)}
        if create_pr:
            out["pullRequestUrl"] = self._url(repo, "discussions", str(repo.num_prs))
        return Reply(200, out)

    def xet_token(self, **_: str) -> Reply:
        self.state.unhandled.append(f"{self.command} {self.path} (Xet)")
        raise HubError(501, "hub_server has no Xet storage: run the clients with HF_HUB_DISABLE_XET=1")

    # -- routes: download ------------------------------------------------------------------
    def resolve(self, ns: str, name: str, rev: str, path: str, t: str | None = None) -> Reply:
        repo = self._repo(t, ns, name)
        commit = self._commit(repo, rev)
        entry = commit.files.get(path)
        headers = {"X-Repo-Commit": commit.id, "Accept-Ranges": "bytes"}
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers)
        headers["ETag"] = f'"{entry.sha256 if entry.lfs else entry.oid}"'
        if entry.lfs:
            headers.update({"X-Linked-Etag": headers["ETag"], "X-Linked-Size": str(entry.size)})
        data = self.state.blob_path(entry.sha256).read_bytes()
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if not match or match.groups() == ("", ""):
            return Reply(200, data, {**headers, "Content-Type": "application/octet-stream"})
        first, last = match.groups()
        start = int(first) if first else max(entry.size - int(last), 0)
        end = min(int(last), entry.size - 1) if first and last else entry.size - 1
        if start >= entry.size or start > end:
            raise HubError(416, "Range not satisfiable", headers={**headers, "Content-Range": f"bytes */{entry.size}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        return Reply(206, data[start : end + 1], {**headers, "Content-Type": "application/octet-stream"})


API_REPO = r"^/api/(?P<t>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
WEB_REPO = r"^/(?:(?P<t>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+?)"
_ROUTE_TABLE = [  # (methods, regex on the raw URL path, handler); named groups are unquoted into kwargs
    (("GET",), r"^/api/whoami-v2$", HubHandler.whoami),
    (("POST",), r"^/api/repos/create$", HubHandler.create_repo),
    (("DELETE",), r"^/api/repos/delete$", HubHandler.delete_repo),
    (("POST",), r"^/api/validate-yaml$", HubHandler.validate_yaml),
    (("GET",), r"^/api/(?P<t>models|datasets|spaces)$", HubHandler.list_repos),
    (("GET",), API_REPO + r"(?:/revision/(?P<rev>[^/]+))?$", HubHandler.repo_info),
    (("PUT",), API_REPO + r"/settings$", HubHandler.settings),
    (("GET",), API_REPO + r"/refs$", HubHandler.refs),
    (("POST", "DELETE"), API_REPO + r"/branch/(?P<rev>[^/]+)$", HubHandler.branch),
    (("POST", "DELETE"), API_REPO + r"/tag/(?P<rev>[^/]+)$", HubHandler.tag),
    (("GET",), API_REPO + r"/commits/(?P<rev>[^/]+)$", HubHandler.commits),
    (("GET",), API_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", HubHandler.tree),
    (("POST",), API_REPO + r"/paths-info/(?P<rev>[^/]+)$", HubHandler.paths_info),
    (("POST",), API_REPO + r"/preupload/(?P<rev>[^/]+)$", HubHandler.preupload),
    (("POST",), API_REPO + r"/commit/(?P<rev>[^/]+)$", HubHandler.commit),
    (("GET", "POST"), API_REPO + r"/xet-(?:read|write)-token/.*$", HubHandler.xet_token),
    (("POST",), WEB_REPO + r"\.git/info/lfs/objects/batch$", HubHandler.lfs_batch),
    (("PUT",), r"^/__lfs__/(?P<oid>[0-9a-f]{64})$", HubHandler.lfs_put),
    (("POST",), r"^/__lfs__/verify/(?P<oid>[0-9a-f]{64})$", HubHandler.lfs_verify),
    (("GET", "HEAD"), WEB_REPO + r"/resolve/(?P<rev>refs/[^/]+/[^/]+|[^/]+)/(?P<path>.+)$", HubHandler.resolve),
]
ROUTES: list[tuple[tuple[str, ...], re.Pattern, Callable[..., Reply]]] = [
    (methods, re.compile(pattern), fn) for methods, pattern, fn in _ROUTE_TABLE
]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    endpoint: str


class HubServer:
    """The Hub on ``127.0.0.1:<free port>``, served from a background thread.

    Usage::

        with HubServer(tokens={"hf_test_token_xxx": "test-user"}) as hub:
            HfApi(endpoint=hub.endpoint, token="hf_test_token_xxx").create_repo("test-user/x")
    """

    def __init__(self, tokens: dict[str, str], root: str | Path | None = None, port: int = 0):
        self._tmp = None if root else tempfile.TemporaryDirectory(prefix="hub_server_")
        self.root = Path(root or self._tmp.name)
        self.state = HubState(self.root, dict(tokens))
        self._httpd = _Server(("127.0.0.1", port), HubHandler)
        self._httpd.state = self.state
        self._httpd.endpoint = self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub_server", daemon=True)

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection and fault injection -------------------------------------------------------
    def reset(self) -> None:
        """Forget all repos, blobs, faults and logs."""
        self.state.reset()

    def fail(self, method: str, pattern: str, status: int = 500, times: int = 1, message: str = "injected") -> None:
        """Answer the next ``times`` requests matching ``method`` ("*" for any) and the ``pattern`` regex
        (searched in the URL path) with ``status``, before any other processing."""
        with self.state.lock:
            self.state.faults.append(Fault(method, re.compile(pattern), status, times, message))

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        return list(self.state.requests)

    @property
    def unhandled(self) -> list[str]:
        return list(self.state.unhandled)

    @property
    def blocked(self) -> list[str]:
        return list(self.state.blocked)

    def count(self, method: str, pattern: str) -> int:
        """Number of logged requests with this method whose path matches the ``pattern`` regex."""
        return sum(1 for m, p, _ in self.requests if m == method and re.search(pattern, p))

    def _commit(self, repo_id: str, repo_type: str, revision: str) -> Commit:
        with self.state.lock:
            repo = self.state.repos[(repo_type, repo_id)]
            commit = repo.resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_type} {repo_id} has no revision {revision!r}")
        return commit

    def list_files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, FileEntry]:
        """``{path: FileEntry}`` of a revision (``FileEntry.lfs`` tells how it was uploaded)."""
        return dict(self._commit(repo_id, repo_type, revision).files)

    def read_file(self, repo_id: str, path: str, repo_type: str = "model", revision: str = "main") -> bytes:
        return self.state.blob_path(self.list_files(repo_id, repo_type, revision)[path].sha256).read_bytes()


if __name__ == "__main__":  # manual debugging: python tests/hub_server.py
    with HubServer(tokens={"hf_test_token_xxx": "test-user"}) as hub:
        print(f"HF_ENDPOINT={hub.endpoint} HF_TOKEN=hf_test_token_xxx HF_HUB_DISABLE_XET=1", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
