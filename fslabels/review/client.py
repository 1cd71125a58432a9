"""A small Label Studio REST client over httpx: the calls framesel's review export/import make.

Plain REST, not ``label-studio-sdk``: the SDK pins opencv-python-headless 4.12, which caps numpy
below what the rest of framesel uses. Every SDK call is one of these requests anyway.

Tokens: a legacy API token is sent as ``Authorization: Token …``; a personal access token (a JWT
refresh token, three dot-separated parts) is exchanged at ``/api/token/refresh`` for an access
token sent as ``Bearer``. Every failure becomes a `LabelStudioError` that names the server, the
request and what to do (server down, wrong token, unknown project, …).

Example:
    >>> ls = LabelStudio("http://127.0.0.1:8080", token="…")  # doctest: +SKIP
    >>> project = ls.find_project("framesel review")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fsmodel._imports import require

__all__ = ["LabelStudio", "LabelStudioError", "ProjectNotFound"]

_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
# Bounds on paging loops: a misbehaving server must not make a client loop forever.
_PAGE_SIZE = 100
_MAX_PAGES = 10_000


class LabelStudioError(RuntimeError):
    """A Label Studio request failed; the message names the server, the request and the cause."""


class ProjectNotFound(LabelStudioError):
    """No project of that title (or id) exists on the server."""


def _is_jwt(token: str) -> bool:
    return bool(_JWT.match(token))


class LabelStudio:
    """A connection to one Label Studio server (REST API, API token).

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8080``.
        token: a legacy API token or a personal access token (JWT).
        timeout: seconds per request.

    Raises:
        ImportError: httpx is missing (``pip install 'framesel[review]'``).
    """

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        httpx = require("httpx", extra="review", purpose="Label Studio review")
        if not url or not url.startswith(("http://", "https://")):
            raise ValueError(f"Label Studio URL {url!r} must start with http:// or https://")
        if not token:
            raise ValueError(
                "a Label Studio API token is needed (Account & Settings → Access Token, or "
                "--user-token when starting the server)"
            )
        self.url = url.rstrip("/")
        self._token = token
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)
        self._auth: dict[str, str] | None = None

    # --- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LabelStudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        if self._auth is None:
            if _is_jwt(self._token):
                reply = self._send(
                    "POST", "/api/token/refresh/", auth=False, json={"refresh": self._token}
                )
                self._auth = {"Authorization": f"Bearer {reply.json()['access']}"}
            else:
                self._auth = {"Authorization": f"Token {self._token}"}
        return self._auth

    def _send(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        what = f"{method} {self.url}{path}"
        headers = {**(self._headers() if auth else {}), **kwargs.pop("headers", {})}
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except self._httpx.TransportError as err:
            raise LabelStudioError(
                f"cannot reach Label Studio at {self.url} ({type(err).__name__}: {err}); is the "
                "server running, and is --url right?"
            ) from err
        if response.status_code in (401, 403):
            detail = _detail(response)
            raise LabelStudioError(
                f"Label Studio at {self.url} refused the token ({response.status_code} on "
                f"{method} {path}: {detail}); check --token (a legacy token needs the "
                "organisation's legacy tokens enabled; a personal access token is a JWT)"
            )
        if response.status_code == 404:
            raise LabelStudioError(f"{what}: not found (404): {_detail(response)}")
        if response.status_code >= 400:
            raise LabelStudioError(
                f"{what} failed with HTTP {response.status_code}: {_detail(response)}"
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as err:
            raise LabelStudioError(
                f"{method} {self.url}{path} did not return JSON (is {self.url} a Label Studio "
                f"server?): {response.text[:200]!r}"
            ) from err

    def _pages(self, path: str, params: Mapping[str, Any], key: str) -> Iterator[dict[str, Any]]:
        """Items of a paginated list endpoint (``?page=&page_size=``), at most _MAX_PAGES pages."""
        for page in range(1, _MAX_PAGES + 1):
            try:
                data = self._json(
                    "GET", path, params={**params, "page": page, "page_size": _PAGE_SIZE}
                )
            except LabelStudioError as err:
                # Past the last page Label Studio answers 404 "Invalid page".
                if page > 1 and "404" in str(err):
                    return
                raise
            items = data if isinstance(data, list) else data.get(key, [])
            yield from items
            if isinstance(data, list) or len(items) < _PAGE_SIZE or not data.get("next", True):
                return
        raise LabelStudioError(f"{self.url}{path}: more than {_MAX_PAGES} pages; giving up")

    # --- users and projects ---------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """The token's user (``/api/current-user/whoami``): checks URL and token in one call."""
        return self._json("GET", "/api/current-user/whoami")

    def users(self) -> dict[int, dict[str, Any]]:
        """All users of the organisation by id."""
        data = self._json("GET", "/api/users/")
        items = data if isinstance(data, list) else data.get("results", [])
        return {int(user["id"]): user for user in items}

    def projects(self) -> list[dict[str, Any]]:
        """Every project the token can see."""
        return list(self._pages("/api/projects/", {}, "results"))

    def find_project(self, title: str) -> dict[str, Any]:
        """The project titled ``title``.

        Raises:
            ProjectNotFound: no project has that title (the message lists the titles there are).
            LabelStudioError: several projects share it.
        """
        projects = self.projects()
        matches = [p for p in projects if p.get("title") == title]
        if not matches:
            known = sorted({str(p.get("title")) for p in projects})
            shown = ", ".join(repr(t) for t in known[:20]) or "none"
            raise ProjectNotFound(
                f"Label Studio at {self.url} has no project titled {title!r} (projects: {shown})"
            )
        if len(matches) > 1:
            ids = ", ".join(str(p["id"]) for p in matches)
            raise LabelStudioError(
                f"{len(matches)} projects at {self.url} are titled {title!r} (ids {ids}); "
                "rename all but one"
            )
        return matches[0]

    def create_project(self, title: str, label_config: str, description: str = "") -> dict:
        """A new project (the server validates ``label_config``)."""
        return self._json(
            "POST",
            "/api/projects/",
            json={"title": title, "label_config": label_config, "description": description},
        )

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return self._json("PATCH", f"/api/projects/{project_id}/", json=fields)

    # --- media ----------------------------------------------------------------------------

    def local_storages(self, project_id: int) -> list[dict[str, Any]]:
        data = self._json("GET", "/api/storages/localfiles/", params={"project": project_id})
        return data if isinstance(data, list) else data.get("results", [])

    def create_local_storage(self, project_id: int, path: str, title: str) -> dict[str, Any]:
        """A Local Files import storage over ``path`` (a directory under the server's
        ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``); it is never synced, it only lets the server
        serve files under ``path`` to the project's users."""
        return self._json(
            "POST",
            "/api/storages/localfiles/",
            json={
                "project": project_id,
                "path": path,
                "title": title,
                "use_blob_urls": False,
                "regex_filter": "",
                "recursive_scan": False,
            },
        )

    def upload(self, project_id: int, files: Sequence[Path]) -> list[str]:
        """Upload files to the project without creating tasks; returns their ``/data/upload/…``
        URLs in the order given."""
        handles = [(f"file{i}", (Path(f).name, Path(f).read_bytes())) for i, f in enumerate(files)]
        data = self._json(
            "POST",
            f"/api/projects/{project_id}/import",
            params={"commit_to_project": "false"},
            files=handles,
        )
        ids = data.get("file_upload_ids") or []
        if len(ids) != len(files):
            raise LabelStudioError(
                f"uploading {len(files)} files to project {project_id} returned {len(ids)} ids"
            )
        uploads = self._json(
            "GET", f"/api/projects/{project_id}/file-uploads", params={"ids": json.dumps(ids)}
        )
        by_id = {int(u["id"]): u["file"] for u in uploads}
        return [by_id[int(i)] for i in ids]

    def fetch_status(self, path: str) -> int:
        """The HTTP status of GET ``path`` with the token (e.g. a ``/data/local-files/`` URL)."""
        try:
            response = self._client.get(path, headers=self._headers())
        except self._httpx.TransportError as err:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url}: {err}") from err
        return response.status_code

    # --- tasks, predictions, annotations --------------------------------------------------

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create tasks (with their ``predictions``); returns the new task ids."""
        data = self._json(
            "POST",
            f"/api/projects/{project_id}/import",
            params={"return_task_ids": "true"},
            json=list(tasks),
        )
        return [int(i) for i in data.get("task_ids") or []]

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its data, annotations and predictions."""
        return list(self._pages("/api/tasks/", {"project": project_id, "fields": "all"}, "tasks"))

    def create_prediction(
        self, task_id: int, result: list[dict[str, Any]], model_version: str, score: float
    ) -> dict[str, Any]:
        return self._json(
            "POST",
            "/api/predictions/",
            json={
                "task": task_id,
                "result": result,
                "model_version": model_version,
                "score": score,
            },
        )

    def delete_prediction(self, prediction_id: int) -> None:
        self._json("DELETE", f"/api/predictions/{prediction_id}/")

    def update_task(self, task_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a task's ``data`` (its annotations and predictions are kept)."""
        return self._json("PATCH", f"/api/tasks/{task_id}/", json={"data": dict(data)})

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **fields: Any) -> dict:
        """An annotation on a task, as a reviewer submits it in the UI."""
        return self._json(
            "POST", f"/api/tasks/{task_id}/annotations/", json={"result": result, **fields}
        )


def _detail(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(data, dict):
        for key in ("validation_errors", "detail", "message", "error"):
            if data.get(key):
                return json.dumps(data[key])[:600] if not isinstance(data[key], str) else data[key]
    return json.dumps(data)[:300]
