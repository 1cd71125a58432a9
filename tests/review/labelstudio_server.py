"""Run a local Label Studio server (its own venv) non-interactively, for the tests (test-only:
its fixed token is no secret).

The server lives in a venv of its own (``scripts/setup_labelstudio.sh``); this module only starts
its ``label-studio`` executable. A cold start on an empty data directory runs every migration
(~35 CPU-seconds), so `LocalLabelStudio` migrates once into a template directory (cached per
machine, keyed by the executable, user and token) and starts each server from a copy of that
database, which takes seconds.

Example:
    >>> with LocalLabelStudio("/path/.venv-labelstudio/bin/label-studio", tmp) as server:  # doctest: +SKIP
    ...     print(server.url, server.token)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["LocalLabelStudio", "default_executable", "server_env"]

DEFAULT_USER = "reviewer@framesel.test"
DEFAULT_PASSWORD = "framesel-review"
DEFAULT_TOKEN = "framesel0review0token0000000000000000000"
_DB_NAME = "label_studio.sqlite3"
_START_TIMEOUT = 180.0
_INIT_TIMEOUT = 600.0
_STOP_TIMEOUT = 20.0


def default_executable() -> Path | None:
    """``$FRAMESEL_LABEL_STUDIO`` if set, else ``.venv-labelstudio/bin/label-studio`` beside the
    framesel checkout; None when neither names an executable file."""
    named = os.environ.get("FRAMESEL_LABEL_STUDIO")
    if named:
        path = Path(named)
    else:
        path = Path(__file__).resolve().parents[2] / ".venv-labelstudio" / "bin" / "label-studio"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def server_env(data_dir: Path, document_root: Path | None = None) -> dict[str, str]:
    """The environment a quiet, offline Label Studio needs (see notes in docs/review.md)."""
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "SECRET_KEY": "framesel-local-label-studio-not-secret",
        "DJANGO_DB": "sqlite",
        "LOG_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    if document_root is not None:
        env["LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"] = "true"
        env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] = str(document_root)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "framesel" / "label-studio"


class LocalLabelStudio:
    """A Label Studio server on 127.0.0.1, started from a migrated template database.

    Args:
        executable: the ``label-studio`` script of the server's venv.
        workdir: where this server's data directory (and log) go.
        document_root: serve local files under this directory (Local Files storage), or None.
        username, password, token: the admin user and its legacy API token (legacy tokens are
            enabled for the organisation).
        cache_dir: where the template database is kept (default ``~/.cache/framesel/label-studio``).
    """

    def __init__(
        self,
        executable: str | os.PathLike[str],
        workdir: str | os.PathLike[str],
        document_root: str | os.PathLike[str] | None = None,
        username: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        token: str = DEFAULT_TOKEN,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.executable = Path(executable)
        self.workdir = Path(workdir)
        self.document_root = Path(document_root) if document_root is not None else None
        self.username, self.password, self.token = username, password, token
        self.cache_dir = Path(cache_dir) if cache_dir else _cache_root()
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "label-studio.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the Label Studio server is not started")
        return f"http://127.0.0.1:{self.port}"

    def _command(self, verb: str, data_dir: Path, port: int) -> list[str]:
        return [
            str(self.executable),
            verb,
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--username",
            self.username,
            "--password",
            self.password,
            "--user-token",
            self.token,
            "--enable-legacy-api-token",
        ]

    def template(self) -> Path:
        """The migrated template database, created once per machine (under a file lock)."""
        import fcntl

        key = hashlib.sha256(
            f"{self.executable.resolve()}|{self.username}|{self.password}|{self.token}".encode()
        ).hexdigest()[:16]
        folder = self.cache_dir / f"template-{key}"
        database = folder / _DB_NAME
        if database.is_file():
            return database
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / f"template-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if database.is_file():  # another process made it while we waited
                return database
            building = self.cache_dir / f"template-{key}.building"
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir(parents=True)
            log = building / "init.log"
            with open(log, "wb") as out:
                result = subprocess.run(
                    self._command("init", building, _free_port()),
                    env=server_env(building),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=_INIT_TIMEOUT,
                    check=False,
                )
            if result.returncode != 0 or not (building / _DB_NAME).is_file():
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"`label-studio init` failed (exit {result.returncode}); log tail:\n{tail}"
                )
            shutil.rmtree(folder, ignore_errors=True)
            building.rename(folder)
        return database

    def start(self) -> LocalLabelStudio:
        """Copy the template database into a fresh data dir, start the server and wait (bounded)
        until it answers with the token.

        Raises:
            RuntimeError: the server exited or did not answer in time (with its log's tail).
        """
        import httpx

        database = self.template()
        data_dir = self.workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(database, data_dir / _DB_NAME)
        # Label Studio moves to port+1 when the port is busy: pick one that is free now and
        # poll exactly that one.
        self.port = _free_port()
        log = open(self.log_path, "wb")  # noqa: SIM115 - the server writes to it until stop()
        self.process = subprocess.Popen(
            self._command("start", data_dir, self.port),
            env=server_env(data_dir, self.document_root),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: stop() signals the whole group
        )
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        headers = {"Authorization": f"Token {self.token}"}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Label Studio exited with {self.process.returncode} while starting; "
                    f"log tail:\n{self._log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                reply = httpx.get(f"{self.url}/api/current-user/whoami", headers=headers, timeout=5)
                if reply.status_code == 200:
                    return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"Label Studio did not answer on {self.url} within {_START_TIMEOUT:.0f} s; "
            f"log tail:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL it if it has not exited in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=_STOP_TIMEOUT)

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> LocalLabelStudio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
