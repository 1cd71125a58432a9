"""A small local Hugging Face Hub-compatible HTTP server for the test suite.

There is no self-hostable Hub to install here, so this module speaks the part of the Hub's HTTP
surface that the unmodified ``huggingface_hub``, ``datasets`` and ``transformers`` clients use
(see ``shared/notes/hub-endpoints.md``): repos (models, datasets, spaces), git-like commits with
40-hex ids, branches, tags, pull-request refs, the LFS basic transfer, ``resolve`` downloads with
``Range`` support, and the Hub's error headers (``X-Error-Code``), so the clients raise their
usual exceptions.  Standard library only.

Usage::

    with HubServer() as hub:  # or hub = HubServer(); url = hub.start(); ...; hub.stop()
        env = {**os.environ, **client_env(hub.url, tmp_path)}
        subprocess.run([sys.executable, "-c", CODE], env=env, check=True)

``HF_ENDPOINT`` is read when ``huggingface_hub`` / ``datasets`` are imported, so set the
environment before those imports (or run the client in a subprocess).

Test helpers that bypass HTTP: :meth:`HubServer.create_repo`, :meth:`HubServer.commit`,
:meth:`HubServer.head`, :meth:`HubServer.list_files`, :meth:`HubServer.read_file`,
:meth:`HubServer.refs`, :meth:`HubServer.commit_ids`; fault injection with
:meth:`HubServer.fail_next`; :attr:`HubServer.requests` logs ``(method, path, status)`` and
:attr:`HubServer.errors` collects server-side tracebacks (it should stay empty).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

__all__ = ["HubError", "HubServer", "client_env"]

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_SUFFIXES = (
    ".parquet", ".arrow", ".safetensors", ".bin", ".pt", ".pth", ".npy", ".npz", ".zip", ".mp4", ".png",
)  # fmt: skip
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub rejects regular (non-LFS) files of 10 MiB or more
MAX_PATH_LENGTH = 1000
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
_REF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,199}")
_PR_REF = re.compile(r"refs/pr/(\d+)")
_SPECIAL_REF_PREFIXES = ("pr", "convert", "heads", "tags")

# The Hub's default .gitattributes (the content of every repo's "initial commit").
_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model "
    "*.msgpack *.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar "
    "*.safetensors saved_model/**/* *.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst "
    "*tfevents* *.mp4 *.png"
)
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in _LFS_PATTERNS.split()
).encode()


# --------------------------------------------------------------------------------------------
# git objects


def git_object_sha(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def git_blob_sha(data: bytes) -> str:
    """The git blob sha1 (what the Hub calls a regular file's oid and ETag)."""
    return git_object_sha("blob", data)


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def needs_lfs(path: str, size: int) -> bool:
    """The server's upload-mode rule (the answer of the preupload endpoint)."""
    return size >= LFS_THRESHOLD or path.lower().endswith(LFS_SUFFIXES)


@dataclass(frozen=True)
class Entry:
    """A file in a commit's tree."""

    oid: str  # git blob sha1: of the content (regular) or of the LFS pointer (LFS)
    size: int  # size of the real content
    sha256: str | None = None  # LFS files only
    pointer_size: int | None = None

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        return self.sha256 or self.oid

    @property
    def blob_key(self) -> str:
        return f"lfs/{self.sha256}" if self.sha256 else f"git/{self.oid}"

    @classmethod
    def lfs(cls, sha256: str, size: int) -> Entry:
        pointer = lfs_pointer(sha256, size)
        return cls(git_blob_sha(pointer), size, sha256, len(pointer))

    def to_list(self) -> list:
        return [self.oid, self.size, self.sha256, self.pointer_size]


def tree_oids(tree: dict[str, Entry]) -> dict[str, str]:
    """Git tree sha1 of every directory of ``tree`` ('' is the root)."""
    dirs = {""}
    for path in tree:
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    items: dict[str, list[tuple[str, str, str]]] = {d: [] for d in dirs}
    for path, entry in tree.items():
        parent, _, name = path.rpartition("/")
        items[parent].append(("100644", name, entry.oid))
    oids: dict[str, str] = {}
    for d in sorted(dirs, key=lambda d: d.count("/") + 1 if d else 0, reverse=True):
        ordered = sorted(items[d], key=lambda t: t[1].encode() + (b"/" if t[0] == "40000" else b""))
        body = b"".join(
            f"{mode} {name}\0".encode() + bytes.fromhex(oid) for mode, name, oid in ordered
        )
        oids[d] = git_object_sha("tree", body)
        if d:
            parent, _, name = d.rpartition("/")
            items[parent].append(("40000", name, oids[d]))
    return oids


def _now() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclass
class Commit:
    id: str
    parents: tuple[str, ...]
    tree: dict[str, Entry]
    tree_oid: str
    title: str
    description: str
    date: str
    author: str

    @property
    def message(self) -> str:
        return self.title + (f"\n\n{self.description}" if self.description else "")

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "parents": list(self.parents),
            "tree": {p: e.to_list() for p, e in self.tree.items()},
            "title": self.title,
            "description": self.description,
            "date": self.date,
            "author": self.author,
        }

    @classmethod
    def from_json(cls, d: dict) -> Commit:
        tree = {p: Entry(*v) for p, v in d["tree"].items()}
        return cls(
            d["id"],
            tuple(d["parents"]),
            tree,
            tree_oids(tree)[""],
            d["title"],
            d["description"],
            d["date"],
            d["author"],
        )


def make_commit(
    tree: dict[str, Entry],
    parents: tuple[str, ...],
    title: str,
    description: str,
    author: str,
    seed: str,
) -> Commit:
    """A commit whose id is a sha1 over its tree, parents and message (the repo id for a root
    commit), so ids are stable and a commit without changes still gets a new id."""
    tree_oid = tree_oids(tree)[""]
    lines = [f"tree {tree_oid}", *(f"parent {p}" for p in parents)]
    if not parents:
        lines.append(f"repo {seed}")
    message = title + (f"\n\n{description}" if description else "")
    commit_id = git_object_sha("commit", ("\n".join(lines) + "\n\n" + message + "\n").encode())
    return Commit(commit_id, parents, dict(tree), tree_oid, title, description, _now(), author)


@dataclass
class Repo:
    type: str
    namespace: str
    name: str
    private: bool
    created: str
    sdk: str | None = None
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    last_modified: str = ""

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.id)

    def to_json(self) -> dict:
        return {
            "type": self.type,
            "namespace": self.namespace,
            "name": self.name,
            "private": self.private,
            "created": self.created,
            "sdk": self.sdk,
            "branches": self.branches,
            "tags": self.tags,
            "prs": {str(k): v for k, v in self.prs.items()},
            "commits": [c.to_json() for c in self.commits.values()],
            "last_modified": self.last_modified,
        }

    @classmethod
    def from_json(cls, d: dict) -> Repo:
        repo = cls(d["type"], d["namespace"], d["name"], d["private"], d["created"], d["sdk"])
        repo.branches = dict(d["branches"])
        repo.tags = dict(d["tags"])
        repo.prs = {int(k): v for k, v in d["prs"].items()}
        repo.commits = {c["id"]: Commit.from_json(c) for c in d["commits"]}
        repo.last_modified = d["last_modified"]
        return repo


class BlobStore:
    """Content-addressed storage: ``git/<sha1>`` for regular files, ``lfs/<sha256>`` for LFS."""

    def __init__(self, root: Path | None):
        self.root = root
        self._mem: dict[str, bytes] = {}

    def _path(self, key: str) -> Path:
        assert self.root is not None
        kind, _, digest = key.partition("/")
        return self.root / kind / digest[:2] / digest

    def has(self, key: str) -> bool:
        return key in self._mem if self.root is None else self._path(key).is_file()

    def put(self, key: str, data: bytes) -> None:
        if self.root is None:
            self._mem[key] = data
            return
        path = self._path(key)
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get(self, key: str) -> bytes:
        return self._mem[key] if self.root is None else self._path(key).read_bytes()

    def size(self, key: str) -> int:
        return len(self._mem[key]) if self.root is None else self._path(key).stat().st_size

    def clear(self) -> None:
        self._mem.clear()


# --------------------------------------------------------------------------------------------
# requests, responses, errors


class HubError(Exception):
    """An HTTP error answer, with the Hub's ``X-Error-Code`` when there is one."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.extra = extra or {}  # more fields of the JSON body


@dataclass
class Request:
    method: str
    path: str  # raw (still percent-encoded), without the query
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    base: str  # "http://host:port" as the client addressed us

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            raise HubError(400, f"Invalid JSON body: {e}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None):
        return cls(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )


def _header_safe(text: str) -> str:
    text = " ".join(text.split())
    return text.encode("latin-1", "replace").decode("latin-1")[:1000]


def _error_response(err: HubError) -> Response:
    headers = {"X-Error-Message": _header_safe(err.message), **err.headers}
    if err.code:
        headers["X-Error-Code"] = err.code
    return Response.json({**err.extra, "error": err.message}, err.status, headers)


@dataclass
class _Fault:
    substring: str
    status: int | str
    times: int
    method: str | None
    when: str


class _BodyError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# the server


class HubServer:
    """An in-memory (optionally on-disk under ``root``) Hugging Face Hub for tests.

    ``token`` is the only accepted token; it belongs to ``user``, who can write to their own
    namespace and to ``orgs``.  Repos in other namespaces can be made with :meth:`create_repo`.
    """

    def __init__(
        self,
        root: Path | None = None,
        token: str = "test-token",
        user: str = "tester",
        orgs: tuple[str, ...] | list[str] = ("framesel-org",),
        *,
        verbose: bool = False,
        max_body_bytes: int = 512 * 1024 * 1024,
        tree_page_size: int = 1000,
        commits_page_size: int = 50,
    ):
        self.root = Path(root) if root is not None else None
        self.token = token
        self.user = user
        self.orgs = tuple(orgs)
        self.verbose = verbose
        self.max_body_bytes = max_body_bytes
        self.tree_page_size = tree_page_size
        self.commits_page_size = commits_page_size
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=10_000)
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._faults: list[_Fault] = []
        self._secret = secrets.token_bytes(16)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
        self._blobs = BlobStore(self.root / "objects" if self.root is not None else None)
        self._load()

    # ---- lifecycle

    def start(self) -> str:
        """Bind 127.0.0.1 on a free port, serve in a daemon thread, return the endpoint URL."""
        if self._httpd is not None:
            assert self.url is not None
            return self.url
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.hub = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.name = "hubserver"
        self._thread.start()
        return self.url

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> HubServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- fault injection

    def fail_next(
        self,
        path_substring: str,
        status: int | str = 500,
        times: int = 1,
        *,
        method: str | None = None,
        when: str = "before",
    ) -> None:
        """Make the next ``times`` requests whose path (with query) contains ``path_substring``
        (and whose method is ``method``, if given) fail: with the HTTP ``status``, or, with
        ``status="disconnect"``, by closing the connection without an answer.  With
        ``when="before"`` (default) the request is not processed, so the remote is unchanged;
        ``when="after"`` processes it and then loses the answer.

        Mind the client's retries: huggingface_hub sends preupload, the LFS batch and the LFS
        PUT through ``http_backoff``, which retries 429/500/502/503/504 and dropped connections
        five times (sleeping 1+2+4+8+8 s); the commit POST itself is never retried.  To fail
        those fast use a 4xx such as 403, or ``times=6``."""
        if status != "disconnect" and not (isinstance(status, int) and 400 <= status <= 599):
            raise ValueError("status must be an HTTP error code (400-599) or 'disconnect'")
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        with self._lock:
            self._faults.append(
                _Fault(path_substring, status, times, method.upper() if method else None, when)
            )

    @property
    def pending_faults(self) -> int:
        """How many injected failures have not fired yet."""
        with self._lock:
            return sum(f.times for f in self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str, when: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (
                    fault.when == when
                    and fault.substring in path
                    and (fault.method is None or fault.method == method)
                ):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ---- test helpers (no HTTP, no auth)

    def reset(self) -> None:
        """Forget every repo (and stored blob) and every pending fault."""
        with self._lock:
            self._repos.clear()
            self._faults.clear()
            self._blobs.clear()
            self._save()

    def create_repo(
        self,
        repo_id: str,
        repo_type: str = "model",
        *,
        private: bool = False,
        exist_ok: bool = False,
    ) -> str:
        """Create a repo in any namespace; return its head commit id."""
        namespace, _, name = repo_id.partition("/")
        with self._lock:
            existing = self._repos.get((repo_type, repo_id))
            if existing is not None:
                if not exist_ok:
                    raise ValueError(f"{repo_type} repo {repo_id} exists")
                return existing.branches["main"]
            return self._new_repo(repo_type, namespace, name, private).branches["main"]

    def commit(
        self,
        repo_id: str,
        files: dict[str, bytes | str | None],
        *,
        repo_type: str = "model",
        revision: str = "main",
        message: str = "Update files",
    ) -> str:
        """Commit ``files`` (``None`` deletes a path) to a branch; return the new commit id."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            head = self._resolve(repo, revision)
            tree = dict(repo.commits[head].tree)
            for path, content in files.items():
                if content is None:
                    tree.pop(path, None)
                    continue
                data = content.encode() if isinstance(content, str) else bytes(content)
                if needs_lfs(path, len(data)):
                    sha = hashlib.sha256(data).hexdigest()
                    self._blobs.put(f"lfs/{sha}", data)
                    tree[path] = Entry.lfs(sha, len(data))
                else:
                    entry = Entry(git_blob_sha(data), len(data))
                    self._blobs.put(entry.blob_key, data)
                    tree[path] = entry
            return self._add_commit(repo, revision, head, tree, message, "")

    def head(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> str:
        with self._lock:
            return self._resolve(self._repos[(repo_type, repo_id)], revision)

    def list_files(
        self, repo_id: str, repo_type: str = "model", revision: str = "main"
    ) -> list[str]:
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return sorted(repo.commits[self._resolve(repo, revision)].tree)

    def read_file(
        self, repo_id: str, path: str, repo_type: str = "model", revision: str = "main"
    ) -> bytes:
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            entry = repo.commits[self._resolve(repo, revision)].tree[path]
        return self._blobs.get(entry.blob_key)

    def refs(self, repo_id: str, repo_type: str = "model") -> dict[str, dict[str, str]]:
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return {
                "branches": dict(repo.branches),
                "tags": dict(repo.tags),
                "pull_requests": {f"refs/pr/{n}": c for n, c in repo.prs.items()},
            }

    def commit_ids(
        self, repo_id: str, repo_type: str = "model", revision: str = "main"
    ) -> list[str]:
        """First-parent history, newest first."""
        with self._lock:
            repo = self._repos[(repo_type, repo_id)]
            return [c.id for c in self._history(repo, self._resolve(repo, revision))]

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    # ---- persistence

    def _load(self) -> None:
        if self.root is None or not (self.root / "state.json").is_file():
            return
        data = json.loads((self.root / "state.json").read_text())
        for d in data["repos"]:
            repo = Repo.from_json(d)
            self._repos[repo.key] = repo

    def _save(self) -> None:
        if self.root is None:
            return
        state = {"repos": [r.to_json() for r in self._repos.values()]}
        tmp = self.root / f"state.json.{secrets.token_hex(4)}.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(self.root / "state.json")

    # ---- state (callers hold the lock)

    def _new_repo(self, repo_type: str, namespace: str, name: str, private: bool, sdk=None):
        repo = Repo(repo_type, namespace, name, private, _now(), sdk)
        self._blobs.put(f"git/{git_blob_sha(DEFAULT_GITATTRIBUTES)}", DEFAULT_GITATTRIBUTES)
        tree = {
            ".gitattributes": Entry(git_blob_sha(DEFAULT_GITATTRIBUTES), len(DEFAULT_GITATTRIBUTES))
        }
        commit = make_commit(tree, (), "initial commit", "", namespace, f"{repo_type}:{repo.id}")
        repo.commits[commit.id] = commit
        repo.branches["main"] = commit.id
        repo.last_modified = commit.date
        self._repos[repo.key] = repo
        self._save()
        return repo

    def _add_commit(
        self, repo: Repo, ref: str, parent: str, tree: dict[str, Entry], title: str, desc: str
    ) -> str:
        """Create a commit on top of ``parent`` and point ``ref`` (a branch or refs/pr/N) at it."""
        commit = make_commit(tree, (parent,), title, desc, self.user, "")
        repo.commits.setdefault(commit.id, commit)
        match = _PR_REF.fullmatch(ref)
        if match:
            repo.prs[int(match[1])] = commit.id
        else:
            repo.branches[ref.removeprefix("refs/heads/")] = commit.id
        repo.last_modified = commit.date
        self._save()
        return commit.id

    def _resolve(self, repo: Repo, rev: str | None) -> str:
        rev = rev or "main"
        name = rev.removeprefix("refs/heads/")
        if name in repo.branches:
            return repo.branches[name]
        name = rev.removeprefix("refs/tags/")
        if name in repo.tags:
            return repo.tags[name]
        match = _PR_REF.fullmatch(rev)
        if match and int(match[1]) in repo.prs:
            return repo.prs[int(match[1])]
        if _HEX40.fullmatch(rev) and rev in repo.commits:
            return rev
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _history(self, repo: Repo, commit_id: str) -> list[Commit]:
        out: list[Commit] = []
        seen: set[str] = set()
        current: str | None = commit_id
        while current is not None and current not in seen:
            seen.add(current)
            commit = repo.commits[current]
            out.append(commit)
            current = commit.parents[0] if commit.parents else None
        return out

    # ---- auth

    def _auth(self, req: Request) -> str | None:
        """The user the request is authenticated as, None if anonymous; 401 for a bad token."""
        header = req.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.token.encode()
        ):
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.user

    def _namespaces(self, user: str | None) -> tuple[str, ...]:
        return (user, *self.orgs) if user else ()

    def _require_user(self, req: Request) -> str:
        user = self._auth(req)
        if user is None:
            raise HubError(
                401,
                "Authentication required: this request needs a write token "
                "(send 'Authorization: Bearer <token>', e.g. set HF_TOKEN)",
            )
        return user

    def _get_repo(self, req: Request, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        user = self._require_user(req) if write else self._auth(req)
        repo = self._repos.get((repo_type, repo_id))
        allowed = repo is not None and repo.namespace in self._namespaces(user)
        if repo is None or (repo.private and not allowed):
            raise HubError(404, "Repository not found", "RepoNotFound")
        if write and not allowed:
            raise HubError(
                403,
                f"You don't have write access to {repo_type} repo {repo_id}: "
                f"user '{user}' can only write to namespaces {list(self._namespaces(user))}",
            )
        return repo

    # ---- routing

    def _handle(self, req: Request) -> Response:
        raw = req.path.split("/")[1:]
        if raw and raw[-1] == "" and len(raw) > 1:
            raw = raw[:-1]
        seg = [unquote(s) for s in raw]
        m = req.method
        if seg[:1] == ["api"]:
            route = seg[1:]
            if route == ["whoami-v2"] and m == "GET":
                return self._whoami(req)
            if route == ["repos", "create"] and m == "POST":
                return self._create_repo(req)
            if route == ["repos", "delete"] and m == "DELETE":
                return self._delete_repo(req)
            if route == ["validate-yaml"] and m == "POST":
                return Response.json({"errors": [], "warnings": []})
            if route == ["agent-harnesses"] and m == "GET":
                return Response.json({"standardEnvVars": [], "harnesses": {}})
            if len(route) == 1 and route[0] in REPO_TYPES and m == "GET":
                return self._list_repos(req, REPO_TYPES[route[0]])
            if len(route) >= 3 and route[0] in REPO_TYPES:
                repo_type = REPO_TYPES[route[0]]
                repo_id = f"{route[1]}/{route[2]}"
                return self._repo_api(req, repo_type, repo_id, raw[4:])
        elif seg[:1] == ["lfs-upload"] and len(seg) == 2 and m == "PUT":
            return self._lfs_upload(req, seg[1])
        elif seg[:1] == ["lfs-verify"] and len(seg) == 2 and m == "POST":
            return self._lfs_verify(req, seg[1])
        elif seg:
            repo_type = "model"
            rest = raw
            if seg[0] in ("datasets", "spaces") and len(seg) >= 3:
                repo_type = REPO_TYPES[seg[0]]
                rest = raw[1:]
            if len(rest) >= 3:
                namespace, name = unquote(rest[0]), unquote(rest[1])
                action = [unquote(s) for s in rest[2:]]
                if name.endswith(".git") and action == ["info", "lfs", "objects", "batch"]:
                    if m == "POST":
                        return self._lfs_batch(req, repo_type, f"{namespace}/{name[:-4]}")
                elif action[0] == "resolve" and len(rest) >= 5 and m in ("GET", "HEAD"):
                    rev, path = _split_revision(rest[3:])
                    return self._resolve_file(req, repo_type, f"{namespace}/{name}", rev, path)
        raise HubError(404, f"Not found: {req.method} {req.path}")

    def _repo_api(self, req: Request, repo_type: str, repo_id: str, raw: list[str]) -> Response:
        m = req.method
        if not raw:
            if m == "GET":
                return self._info(req, repo_type, repo_id, None)
            raise HubError(405, f"Method {m} not allowed")
        action, args = unquote(raw[0]), raw[1:]
        if action == "revision" and args and m == "GET":
            rev, _ = _split_revision(args)
            return self._info(req, repo_type, repo_id, rev)
        if action == "preupload" and args and m == "POST":
            return self._preupload(req, repo_type, repo_id, _split_revision(args)[0])
        if action == "commit" and args and m == "POST":
            return self._commit(req, repo_type, repo_id, _split_revision(args)[0])
        if action == "tag" and args and m in ("POST", "DELETE"):
            name = unquote("/".join(args))
            if m == "POST":
                return self._create_tag(req, repo_type, repo_id, name)
            return self._delete_tag(req, repo_type, repo_id, name)
        if action == "branch" and args and m in ("POST", "DELETE"):
            name = unquote("/".join(args))
            if m == "POST":
                return self._create_branch(req, repo_type, repo_id, name)
            return self._delete_branch(req, repo_type, repo_id, name)
        if action == "refs" and not args and m == "GET":
            return self._refs(req, repo_type, repo_id)
        if action == "commits" and args and m == "GET":
            return self._commits(req, repo_type, repo_id, _split_revision(args)[0])
        if action == "tree" and args and m == "GET":
            rev, path = _split_revision(args)
            return self._tree(req, repo_type, repo_id, rev, path)
        if action == "paths-info" and args and m == "POST":
            return self._paths_info(req, repo_type, repo_id, _split_revision(args)[0])
        if action == "settings" and not args and m == "PUT":
            return self._settings(req, repo_type, repo_id)
        raise HubError(404, f"Not found: {req.method} {req.path}")

    # ---- account and repos

    def _whoami(self, req: Request) -> Response:
        user = self._require_user(req)
        return Response.json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": f"{user}@localhost",
                "emailVerified": True,
                "isPro": False,
                "canPay": False,
                "orgs": [{"type": "org", "name": org, "fullname": org} for org in self.orgs],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "test", "role": "write", "createdAt": _now()},
                },
            }
        )

    def _create_repo(self, req: Request) -> Response:
        user = self._require_user(req)
        payload = req.json()
        name = payload.get("name")
        namespace = payload.get("organization") or user
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"Invalid repo type: {repo_type!r}")
        if not isinstance(name, str) or not _REPO_NAME.fullmatch(name) or ".." in name:
            raise HubError(400, f"Invalid repo name: {name!r}")
        if name.endswith(".git") or "--" in name:
            raise HubError(400, f"Invalid repo name: {name!r}")
        visibility = payload.get("visibility")
        private = (
            visibility == "private" if visibility is not None else bool(payload.get("private"))
        )
        if namespace not in self._namespaces(user):
            raise HubError(
                403,
                f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"'
                f" (user '{user}' can write to {list(self._namespaces(user))})",
            )
        repo_id = f"{namespace}/{name}"
        url = f"{req.base}/{URL_PREFIXES[repo_type]}{repo_id}"
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                # the client reads "url" from this answer when create_repo(exist_ok=True)
                raise HubError(
                    409, f"You already created this {repo_type} repo", extra={"url": url}
                )
            self._new_repo(repo_type, namespace, name, private, payload.get("sdk"))
        return Response.json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self, req: Request) -> Response:
        payload = req.json()
        namespace = payload.get("organization") or self._require_user(req)
        repo_type = payload.get("type") or "model"
        repo_id = f"{namespace}/{payload.get('name')}"
        with self._lock:
            self._get_repo(req, repo_type, repo_id, write=True)
            del self._repos[(repo_type, repo_id)]
            self._save()
        return Response.json({})

    def _settings(self, req: Request, repo_type: str, repo_id: str) -> Response:
        payload = req.json()
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id, write=True)
            if "private" in payload and payload["private"] is not None:
                repo.private = bool(payload["private"])
            if payload.get("visibility") in ("private", "public"):
                repo.private = payload["visibility"] == "private"
            self._save()
            return Response.json({"private": repo.private})

    def _list_repos(self, req: Request, repo_type: str) -> Response:
        """GET /api/models|datasets|spaces?author=&search=&limit= (list_models & co)."""
        user = self._auth(req)
        author, search = req.param("author"), (req.param("search") or "").lower()
        limit = int(req.param("limit") or 0) or None
        with self._lock:
            found = [
                self._info_dict(req, repo, repo.branches["main"])
                for repo in sorted(self._repos.values(), key=lambda r: r.id)
                if repo.type == repo_type
                and (not repo.private or repo.namespace in self._namespaces(user))
                and (author is None or repo.namespace == author)
                and search in repo.id.lower()
            ]
        return Response.json(found[:limit])

    def _info(self, req: Request, repo_type: str, repo_id: str, rev: str | None) -> Response:
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id)
            info = self._info_dict(req, repo, self._resolve(repo, rev))
        expand = req.query.get("expand") or req.query.get("expand[]")
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id", *expand)}
        return Response.json(info)

    def _info_dict(self, req: Request, repo: Repo, sha: str) -> dict[str, Any]:
        repo_type, repo_id = repo.type, repo.id
        commit = repo.commits[sha]
        siblings = []
        for path, entry in sorted(commit.tree.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if req.flag("blobs"):
                sibling.update(size=entry.size, blobId=entry.oid)
                if entry.is_lfs:
                    sibling["lfs"] = {
                        "sha256": entry.sha256,
                        "size": entry.size,
                        "pointerSize": entry.pointer_size,
                    }
            siblings.append(sibling)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo_type}:{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo.namespace,
            "sha": sha,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.tree.values()),
        }
        if repo_type == "model":
            info["modelId"] = repo_id
        if repo_type == "space":
            info.update(sdk=repo.sdk, runtime=None)
        return info

    # ---- uploads

    def _preupload(self, req: Request, repo_type: str, repo_id: str, rev: str) -> Response:
        payload = req.json()
        files = payload.get("files")
        if not isinstance(files, list):
            raise HubError(400, "Expected a JSON body {files: [{path, sample, size}]}")
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id, write=True)
            tree = repo.commits[self._resolve(repo, rev)].tree
            out = []
            for item in files:
                if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                    raise HubError(400, f"Invalid file entry in preupload: {item!r}")
                path, size = item["path"], int(item.get("size") or 0)
                remote = tree.get(path)
                out.append(
                    {
                        "path": path,
                        "uploadMode": "lfs" if needs_lfs(path, size) else "regular",
                        "shouldIgnore": False,
                        "oid": remote.etag if remote is not None else None,
                    }
                )
        return Response.json({"files": out})

    def _sign(self, oid: str, size: int) -> str:
        return hmac.new(self._secret, f"{oid}:{size}".encode(), "sha256").hexdigest()[:32]

    def _lfs_batch(self, req: Request, repo_type: str, repo_id: str) -> Response:
        payload = req.json()
        operation = payload.get("operation", "upload")
        objects = payload.get("objects")
        if operation != "upload" or not isinstance(objects, list):
            raise HubError(
                400, "Only the LFS 'upload' operation with a list of objects is supported"
            )
        with self._lock:
            self._get_repo(req, repo_type, repo_id, write=True)
        out = []
        for obj in objects:
            oid, size = obj.get("oid"), obj.get("size")
            if not isinstance(oid, str) or not _HEX64.fullmatch(oid) or not isinstance(size, int):
                out.append(
                    {
                        "oid": str(oid),
                        "size": size if isinstance(size, int) else 0,
                        "error": {"code": 422, "message": "Invalid oid or size"},
                    }
                )
                continue
            key = f"lfs/{oid}"
            if self._blobs.has(key) and self._blobs.size(key) == size:
                out.append({"oid": oid, "size": size})
                continue
            query = urlencode({"size": size, "sig": self._sign(oid, size)})
            out.append(
                {
                    "oid": oid,
                    "size": size,
                    "authenticated": True,
                    "actions": {
                        "upload": {
                            "href": f"{req.base}/lfs-upload/{oid}?{query}",
                            "expires_in": 3600,
                        },
                        "verify": {"href": f"{req.base}/lfs-verify/{oid}", "expires_in": 3600},
                    },
                }
            )
        return Response(
            200,
            json.dumps({"transfer": "basic", "objects": out, "hash_algo": "sha256"}).encode(),
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _lfs_upload(self, req: Request, oid: str) -> Response:
        try:
            size = int(req.param("size") or "")
        except ValueError:
            raise HubError(400, "Missing size in the upload URL") from None
        if not _HEX64.fullmatch(oid) or not hmac.compare_digest(
            req.param("sig") or "", self._sign(oid, size)
        ):
            raise HubError(403, "Invalid or expired LFS upload URL")
        if len(req.body) != size:
            raise HubError(400, f"Size mismatch: expected {size} bytes, received {len(req.body)}")
        actual = hashlib.sha256(req.body).hexdigest()
        if actual != oid:
            raise HubError(400, f"sha256 mismatch: expected {oid}, received content with {actual}")
        self._blobs.put(f"lfs/{oid}", req.body)
        return Response(200, b"", {})

    def _lfs_verify(self, req: Request, oid: str) -> Response:
        self._require_user(req)
        payload = req.json()
        key = f"lfs/{oid}"
        if not self._blobs.has(key) or self._blobs.size(key) != payload.get("size"):
            raise HubError(404, f"LFS object {oid} not found (or wrong size)")
        return Response.json({"success": True})

    def _commit(self, req: Request, repo_type: str, repo_id: str, rev: str) -> Response:
        header, ops = _parse_ndjson(req.body)
        summary = header.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise HubError(400, "Commit summary (message) must be a non-empty string")
        description = header.get("description") or ""
        parent = header.get("parentCommit")
        if parent is not None and (
            not isinstance(parent, str) or not re.fullmatch(r"[0-9a-fA-F]{5,40}", parent)
        ):
            raise HubError(400, f"Invalid parentCommit: {parent!r}")
        create_pr = req.flag("create_pr")
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id, write=True)
            base_ref = rev.removeprefix("refs/heads/")
            is_pr_ref = _PR_REF.fullmatch(rev) is not None
            if base_ref not in repo.branches and not (is_pr_ref and not create_pr):
                self._resolve(repo, rev)  # 404 RevisionNotFound if it does not exist at all
                raise HubError(
                    400, f"Invalid rev id: {rev} (commits must target a branch or a pull request)"
                )
            head = self._resolve(repo, rev)
            if parent is not None:
                parent = parent.lower()
                matches = [c for c in repo.commits if c.startswith(parent)]
                if create_pr:
                    if len(matches) != 1:
                        raise HubError(400, f"Unknown parentCommit: {parent}")
                    head = matches[0]
                elif not head.startswith(parent):
                    raise HubError(
                        412,
                        f"A commit has happened since. Please refresh and try again. "
                        f"(parentCommit {parent} is not the head {head} of {rev})",
                    )
            tree = self._apply_operations(repo.commits[head].tree, ops, head)
            pr_url = None
            target = rev
            if create_pr:
                number = max([0, *repo.prs]) + 1
                target = f"refs/pr/{number}"
                pr_url = f"{req.base}/{URL_PREFIXES[repo_type]}{repo_id}/discussions/{number}"
            commit_id = self._add_commit(repo, target, head, tree, summary, description)
        return Response.json(
            {
                "success": True,
                "commitOid": commit_id,
                "commitUrl": f"{req.base}/{URL_PREFIXES[repo_type]}{repo_id}/commit/{commit_id}",
                "pullRequestUrl": pr_url,
            }
        )

    def _apply_operations(self, tree: dict[str, Entry], ops: list, head: str) -> dict[str, Entry]:
        tree = dict(tree)
        new_blobs: dict[str, bytes] = {}
        for key, value in ops:
            if not isinstance(value, dict):
                raise HubError(400, f"Invalid commit operation: {key}")
            if key == "deletedFolder":
                folder = str(value.get("path", "")).strip("/")
                if not folder:
                    raise HubError(400, "Cannot delete the root folder")
                doomed = [p for p in tree if p.startswith(folder + "/")]
                if not doomed:
                    raise HubError(
                        404,
                        f"A folder with this name doesn't exist: {folder}",
                        "EntryNotFound",
                        {"X-Repo-Commit": head},
                    )
                for p in doomed:
                    del tree[p]
                continue
            path = _check_path(value.get("path"))
            if key == "deletedFile":
                if path not in tree:
                    raise HubError(
                        404,
                        f"A file with this name doesn't exist: {path}",
                        "EntryNotFound",
                        {"X-Repo-Commit": head},
                    )
                del tree[path]
            elif key == "file":
                content = value.get("content")
                if not isinstance(content, str):
                    raise HubError(400, f"Missing content for {path}")
                encoding = value.get("encoding", "utf-8")
                try:
                    data = (
                        base64.b64decode(content, validate=True)
                        if encoding == "base64"
                        else content.encode()
                    )
                except ValueError:
                    raise HubError(400, f"Invalid base64 content for {path}") from None
                if len(data) >= LFS_THRESHOLD:
                    raise HubError(
                        400,
                        f"{path} is {len(data)} bytes: files of 10 MiB or more must be uploaded "
                        "with LFS (see the preupload answer)",
                    )
                entry = Entry(git_blob_sha(data), len(data))
                new_blobs[entry.blob_key] = data
                tree[path] = entry
            elif key == "lfsFile":
                oid, size = value.get("oid"), value.get("size")
                if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str):
                    raise HubError(400, f"Invalid LFS pointer for {path}")
                oid = oid.lower()
                key_ = f"lfs/{oid}"
                if size is None and self._blobs.has(key_):  # copies send no size
                    size = self._blobs.size(key_)
                if not self._blobs.has(key_) or self._blobs.size(key_) != size:
                    raise HubError(
                        422,
                        f"LFS file {path} (oid {oid}, size {size}) was not uploaded to this server",
                    )
                tree[path] = Entry.lfs(oid, size)
            else:
                raise HubError(400, f"Unknown commit operation key: {key!r}")
        for path in tree:
            parts = path.split("/")
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in tree:
                    raise HubError(
                        400,
                        f"Path conflict: {'/'.join(parts[:i])} is a file but {path} needs a folder",
                    )
        for key, data in new_blobs.items():
            self._blobs.put(key, data)
        return tree

    # ---- refs

    def _create_tag(self, req: Request, repo_type: str, repo_id: str, rev: str) -> Response:
        payload = req.json()
        tag = payload.get("tag")
        if not isinstance(tag, str) or not _REF_NAME.fullmatch(tag) or ".." in tag:
            raise HubError(400, f"Invalid tag name: {tag!r}")
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id, write=True)
            target = self._resolve(repo, rev)
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            if tag in repo.branches:
                raise HubError(409, f"A branch named {tag} already exists")
            repo.tags[tag] = target
            self._save()
        return Response.json({})

    def _delete_tag(self, req: Request, repo_type: str, repo_id: str, tag: str) -> Response:
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id, write=True)
            tag = tag.removeprefix("refs/tags/")
            if tag not in repo.tags:
                raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
            del repo.tags[tag]
            self._save()
        return Response.json({})

    def _create_branch(self, req: Request, repo_type: str, repo_id: str, branch: str) -> Response:
        payload = req.json()
        if not _REF_NAME.fullmatch(branch) or ".." in branch or branch.startswith("refs/"):
            raise HubError(400, f"Invalid branch name: {branch!r}")
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id, write=True)
            start = self._resolve(repo, payload.get("startingPoint") or "main")
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            if branch in repo.tags:
                raise HubError(409, f"A tag named {branch} already exists")
            repo.branches[branch] = start
            self._save()
        return Response.json({})

    def _delete_branch(self, req: Request, repo_type: str, repo_id: str, branch: str) -> Response:
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id, write=True)
            branch = branch.removeprefix("refs/heads/")
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if branch == "main":
                raise HubError(403, "Cannot delete the default branch 'main'")
            del repo.branches[branch]
            self._save()
        return Response.json({})

    def _refs(self, req: Request, repo_type: str, repo_id: str) -> Response:
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id)
            data: dict[str, Any] = {
                "branches": [
                    {"name": b, "ref": f"refs/heads/{b}", "targetCommit": c}
                    for b, c in sorted(repo.branches.items())
                ],
                "tags": [
                    {"name": t, "ref": f"refs/tags/{t}", "targetCommit": c}
                    for t, c in sorted(repo.tags.items())
                ],
                "converts": [],
            }
            if req.flag("include_prs"):
                data["pullRequests"] = [
                    {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": c}
                    for n, c in sorted(repo.prs.items())
                ]
        return Response.json(data)

    # ---- history and trees

    def _commits(self, req: Request, repo_type: str, repo_id: str, rev: str) -> Response:
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id)
            history = self._history(repo, self._resolve(repo, rev))
        page = int(req.param("p") or 0)
        limit = max(1, min(int(req.param("limit") or self.commits_page_size), 1000))
        chunk = history[page * limit : (page + 1) * limit]
        formatted = "formatted" in (req.query.get("expand[]", []) + req.query.get("expand", []))
        items = []
        for c in chunk:
            item: dict[str, Any] = {
                "id": c.id,
                "title": c.title,
                "message": c.message,
                "date": c.date,
                "authors": [{"user": c.author, "avatar": None}],
            }
            if formatted:
                item["formatted"] = {"title": c.title, "message": c.message}
            items.append(item)
        headers = {}
        if (page + 1) * limit < len(history):
            headers["Link"] = _next_link(req, {"p": str(page + 1), "limit": str(limit)})
        return Response.json(items, headers=headers)

    def _last_commits(self, repo: Repo, head: str, paths: list[str]) -> dict[str, dict]:
        """For each path (file or folder), the newest commit of ``head``'s first-parent
        history that changed it."""
        out: dict[str, dict] = {}
        pending = set(paths)
        history = self._history(repo, head)
        state_cache: dict[str, dict[str, str]] = {}

        def state(commit: Commit) -> dict[str, str]:
            if commit.id not in state_cache:
                s = {p: e.oid for p, e in commit.tree.items()}
                s.update({f"{d}/": oid for d, oid in tree_oids(commit.tree).items() if d})
                state_cache[commit.id] = s
            return state_cache[commit.id]

        def key(commit: Commit, path: str) -> str | None:
            s = state(commit)
            return s.get(path) or s.get(path + "/")

        for i, commit in enumerate(history):
            parent = history[i + 1] if i + 1 < len(history) else None
            for path in list(pending):
                if parent is None or key(commit, path) != key(parent, path):
                    out[path] = {"id": commit.id, "title": commit.title, "date": commit.date}
                    pending.discard(path)
            if not pending:
                break
        return out

    def _entries(self, commit: Commit, paths: list[str]) -> list[dict]:
        dirs = {d: oid for d, oid in tree_oids(commit.tree).items() if d}
        out = []
        for path in paths:
            entry = commit.tree.get(path)
            if entry is not None:
                item: dict[str, Any] = {
                    "type": "file",
                    "oid": entry.oid,
                    "size": entry.size,
                    "path": path,
                }
                if entry.is_lfs:
                    item["lfs"] = {
                        "oid": entry.sha256,
                        "size": entry.size,
                        "pointerSize": entry.pointer_size,
                    }
                out.append(item)
            elif path in dirs:
                out.append({"type": "directory", "oid": dirs[path], "size": 0, "path": path})
        return out

    def _tree(self, req: Request, repo_type: str, repo_id: str, rev: str, path: str) -> Response:
        path = path.strip("/")
        expand = req.flag("expand")
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id)
            sha = self._resolve(repo, rev)
            commit = repo.commits[sha]
            dirs = {d for d in tree_oids(commit.tree) if d}
            if path and path not in dirs:
                raise HubError(
                    404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha}
                )
            prefix = f"{path}/" if path else ""
            names = [p for p in sorted(dirs | set(commit.tree)) if p.startswith(prefix)]
            if not req.flag("recursive"):
                names = [p for p in names if "/" not in p[len(prefix) :]]
            limit = self.tree_page_size if not expand else min(self.tree_page_size, 50)
            start = int(req.param("cursor") or 0)
            chunk = names[start : start + limit]
            entries = self._entries(commit, chunk)
            if expand:
                last = self._last_commits(repo, sha, chunk)
                for item in entries:
                    item["lastCommit"] = last.get(item["path"])
        headers = {}
        if start + limit < len(names):
            headers["Link"] = _next_link(req, {"cursor": str(start + limit)})
        return Response.json(entries, headers=headers)

    def _paths_info(self, req: Request, repo_type: str, repo_id: str, rev: str) -> Response:
        content_type = req.headers.get("Content-Type", "")
        if "json" in content_type:
            payload = req.json()
            paths = payload.get("paths") or []
            expand = bool(payload.get("expand"))
        else:
            form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand", ["false"])[-1]).lower() in ("1", "true")
        paths = [str(p).strip("/") for p in paths]
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id)
            sha = self._resolve(repo, rev)
            commit = repo.commits[sha]
            entries = self._entries(commit, list(dict.fromkeys(paths)))
            if expand:
                last = self._last_commits(repo, sha, [e["path"] for e in entries])
                for item in entries:
                    item["lastCommit"] = last.get(item["path"])
        return Response.json(entries)

    # ---- downloads

    def _resolve_file(
        self, req: Request, repo_type: str, repo_id: str, rev: str, path: str
    ) -> Response:
        with self._lock:
            repo = self._get_repo(req, repo_type, repo_id)
            sha = self._resolve(repo, rev)
            entry = repo.commits[sha].tree.get(path)
            if entry is None:
                raise HubError(
                    404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha}
                )
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry.is_lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        size = entry.size
        if req.method == "HEAD":
            headers["Content-Length"] = str(size)
            return Response(200, b"", headers)
        data = self._blobs.get(entry.blob_key)
        byte_range = _parse_range(req.headers.get("Range"), size)
        if byte_range is None:
            return Response(200, data, headers)
        if byte_range == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            return Response(416, b"", headers)
        first, last = byte_range
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return Response(206, data[first : last + 1], headers)


# --------------------------------------------------------------------------------------------
# helpers


def _split_revision(raw_segments: list[str]) -> tuple[str, str]:
    """Split raw (percent-encoded) URL segments into (revision, path).  Revisions arrive quoted
    (``refs%2Fpr%2F1``) except special refs, which some clients send as ``refs/pr/1``."""
    if not raw_segments:
        return "main", ""
    first = raw_segments[0]
    if first == "refs" and len(raw_segments) >= 3 and raw_segments[1] in _SPECIAL_REF_PREFIXES:
        rev = "/".join(unquote(s) for s in raw_segments[:3])
        rest = raw_segments[3:]
    else:
        rev = unquote(first)
        rest = raw_segments[1:]
    return rev, unquote("/".join(rest))


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_LENGTH:
        raise HubError(400, f"Invalid path in commit: {path!r}")
    parts = path.split("/")
    if (
        path.startswith("/")
        or "\0" in path
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
        or parts[0] == ".git"
    ):
        raise HubError(400, f"Invalid path in commit: {path!r}")
    return path


def _parse_ndjson(body: bytes) -> tuple[dict, list[tuple[str, Any]]]:
    header: dict | None = None
    ops: list[tuple[str, Any]] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise HubError(400, f"Invalid NDJSON line {number}") from None
        if not isinstance(item, dict) or "key" not in item:
            raise HubError(400, f"Invalid NDJSON line {number}: expected {{key, value}}")
        if item["key"] == "header":
            if header is not None or not isinstance(item.get("value"), dict):
                raise HubError(400, "Invalid or duplicate commit header")
            header = item["value"]
        else:
            ops.append((item["key"], item.get("value")))
    if header is None:
        raise HubError(400, "Missing commit header line")
    return header, ops


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) inclusive, "unsatisfiable", or None for the whole file."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if match is None or (not match[1] and not match[2]):
        return None  # multiple or malformed ranges: answer with the whole file
    if not match[1]:  # suffix range: the last N bytes
        n = int(match[2])
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


def _next_link(req: Request, updates: dict[str, str]) -> str:
    query = {k: v for k, v in req.query.items()}
    for k, v in updates.items():
        query[k] = [v]
    return f'<{req.base}{req.path}?{urlencode(query, doseq=True)}>; rel="next"'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "framesel-hubserver/1.0"
    timeout = 60  # seconds a connection may idle before the server drops it

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        if self.hub.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _read_body(self) -> bytes:
        limit = self.hub.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise _BodyError("malformed chunked body")
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BodyError("malformed chunk size") from None
                if n == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    break
                total += n
                if total > limit:
                    raise _BodyError(f"body larger than {limit} bytes")
                data = self.rfile.read(n)
                if len(data) != n:
                    raise _BodyError("truncated chunk")
                chunks.append(data)
                self.rfile.readline(1024)
            return b"".join(chunks)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BodyError("invalid Content-Length") from None
        if length < 0 or length > limit:
            raise _BodyError(f"body larger than {limit} bytes")
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            raise _BodyError("truncated body")
        return data

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        try:
            body = self._read_body()
        except (_BodyError, OSError) as e:
            self.close_connection = True
            self._send(
                method, _error_response(HubError(413 if "larger" in str(e) else 400, str(e)))
            )
            return
        split = urlsplit(self.path)
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        req = Request(
            method,
            split.path,
            parse_qs(split.query, keep_blank_values=True),
            self.headers,
            body,
            f"http://{host}",
        )
        fault = hub._take_fault(method, self.path, "before")
        if fault is not None:
            self._fault(method, fault)
            return
        try:
            response = hub._handle(req)
        except HubError as e:
            response = _error_response(e)
        except Exception:
            hub.errors.append(traceback.format_exc())
            if hub.verbose:
                traceback.print_exc()
            response = _error_response(
                HubError(500, "Internal server error (see HubServer.errors)")
            )
        fault = hub._take_fault(method, self.path, "after")
        if fault is not None:
            self._fault(method, fault)
            return
        self._send(method, response)

    def _fault(self, method: str, fault: _Fault) -> None:
        if fault.status == "disconnect":
            self.hub.requests.append((method, self.path, 0))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        assert isinstance(fault.status, int)
        self._send(
            method, _error_response(HubError(fault.status, "Injected fault (HubServer.fail_next)"))
        )

    def _send(self, method: str, response: Response) -> None:
        self.hub.requests.append((method, self.path, response.status))
        self.send_response(response.status)
        headers = dict(response.headers)
        headers.setdefault("Content-Length", str(len(response.body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD" and response.body:
            try:
                self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


def client_env(url: str, tmp_home: str | Path, token: str = "test-token") -> dict[str, str]:
    """Environment variables that point the Hugging Face clients at ``url`` with ``token``,
    with caches under ``tmp_home``.  Apply them before importing huggingface_hub / datasets."""
    home = Path(tmp_home)
    return {
        "HF_ENDPOINT": url,
        "HF_TOKEN": token,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(home / "hf-home"),
        "HF_DATASETS_CACHE": str(home / "hf-datasets-cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_MODULES_CACHE": str(home / "hf-modules"),
    }
