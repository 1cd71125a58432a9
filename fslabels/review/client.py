"""The Label Studio calls framesel's review export/import make, over the official
``label-studio-sdk`` (2.x).

A thin layer: the SDK makes the requests and handles both kinds of token (a legacy API token is
sent as ``Authorization: Token …``; a personal access token, a JWT refresh token, is exchanged for
an access token sent as ``Bearer``). This class adds what framesel needs on top: plain dicts out,
projects found by title, bounded paging, and one `LabelStudioError` per failure that names the
server, the request and what to do (server down, wrong token, unknown project, …). The SDK is
imported when a client is created, so ``import fslabels.review`` stays cheap.

One request has no SDK method and goes out on the SDK's HTTP client with the SDK's auth headers
(`_raw`): fetching a served media URL (``/data/local-files/?d=…``) to check that the reviewer's
browser will get it.

Example:
    >>> ls = LabelStudio("http://127.0.0.1:8080", token="…")  # doctest: +SKIP
    >>> project = ls.find_project("framesel review")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fsmodel._imports import require

__all__ = ["LabelStudio", "LabelStudioError", "ProjectNotFound"]

# Bounds on paging loops: a misbehaving server must not make a client loop forever.
_PAGE_SIZE = 100
_MAX_PAGES = 10_000


class LabelStudioError(RuntimeError):
    """A Label Studio request failed; the message names the server, the request and the cause."""


class ProjectNotFound(LabelStudioError):
    """No project of that title (or id) exists on the server."""


def _plain(item: Any) -> Any:
    """An SDK model (or a list of them) as the plain JSON-like dicts the rest of framesel reads."""
    if isinstance(item, list):
        return [_plain(i) for i in item]
    if hasattr(item, "model_dump"):
        return item.model_dump(mode="json", by_alias=True)
    return item


class LabelStudio:
    """A connection to one Label Studio server (label-studio-sdk, API token).

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8080``.
        token: a legacy API token or a personal access token (JWT).
        timeout: seconds per request.

    Raises:
        ImportError: label-studio-sdk is missing (``pip install 'framesel[review]'``).
    """

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        sdk = require("label_studio_sdk", extra="review", purpose="Label Studio review")
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        if not url or not url.startswith(("http://", "https://")):
            raise ValueError(f"Label Studio URL {url!r} must start with http:// or https://")
        if not token:
            raise ValueError(
                "a Label Studio API token is needed (Account & Settings → Access Token, or "
                "--user-token when starting the server)"
            )
        self.url = url.rstrip("/")
        self._httpx = httpx
        self._api_error = ApiError
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        # The SDK reads a JWT's expiry when it is created: an expired token fails here.
        self._sdk = self._call(
            "connect",
            lambda: sdk.LabelStudio(
                base_url=self.url, api_key=token, httpx_client=self._http, max_retries=0
            ),
        )

    # --- plumbing -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, request: Callable[[], Any]) -> Any:
        """Run one SDK request; every failure becomes a `LabelStudioError` naming ``what``."""
        try:
            return request()
        except (self._httpx.TransportError, self._api_error) as err:
            raise self._translate(what, err) from err

    def _translate(self, what: str, err: Exception) -> LabelStudioError:
        if isinstance(err, self._httpx.TransportError):
            return LabelStudioError(
                f"cannot reach Label Studio at {self.url} ({type(err).__name__}: {err}); is the "
                "server running, and is --url right?"
            )
        return self._error(what, getattr(err, "status_code", None), getattr(err, "body", None))

    def _error(self, what: str, status: int | None, body: Any) -> LabelStudioError:
        detail = _detail(body)
        if status in (401, 403):
            return LabelStudioError(
                f"Label Studio at {self.url} refused the token ({status} on {what}: {detail}); "
                "check --token (a legacy token needs the organisation's legacy tokens enabled; "
                "a personal access token is a JWT)"
            )
        if status == 404:
            return LabelStudioError(f"{what} at {self.url}: not found (404): {detail}")
        return LabelStudioError(f"{what} at {self.url} failed with HTTP {status}: {detail}")

    def _raw(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request the SDK has no method for, on the SDK's HTTP client with its auth headers
        (which also does the personal-access-token exchange)."""
        what = f"{method} {path}"
        headers = self._call(what, self._sdk._client_wrapper.get_headers)
        return self._call(
            what, lambda: self._http.request(method, self.url + path, headers=headers, **kwargs)
        )

    def _pages(self, what: str, pager: Callable[[], Any]) -> list[dict[str, Any]]:
        """Every item of a paginated SDK list, at most _MAX_PAGES pages."""
        items: list[dict[str, Any]] = []
        pages = self._call(what, lambda: iter(pager().iter_pages()))
        for number in range(_MAX_PAGES):
            try:
                page = next(pages, None)
            except (self._httpx.TransportError, self._api_error) as err:
                # The SDK asks for one page past a full last page; Label Studio answers that
                # with 404 "Invalid page".
                if number > 0 and getattr(err, "status_code", None) == 404:
                    return items
                raise self._translate(what, err) from err
            if page is None:
                return items
            items += _plain(list(page.items or []))
        raise LabelStudioError(f"{what} at {self.url}: more than {_MAX_PAGES} pages; giving up")

    # --- users and projects ---------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """The token's user: checks URL and token in one call."""
        return _plain(self._call("whoami", self._sdk.users.whoami))

    def users(self) -> dict[int, dict[str, Any]]:
        """All users of the organisation by id."""
        return {int(u["id"]): u for u in _plain(self._call("list users", self._sdk.users.list))}

    def projects(self) -> list[dict[str, Any]]:
        """Every project the token can see."""
        return self._pages("list projects", lambda: self._sdk.projects.list(page_size=_PAGE_SIZE))

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
        return _plain(
            self._call(
                f"create project {title!r}",
                lambda: self._sdk.projects.create(
                    title=title, label_config=label_config, description=description
                ),
            )
        )

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return _plain(
            self._call(
                f"update project {project_id}",
                lambda: self._sdk.projects.update(id=project_id, **fields),
            )
        )

    # --- media ----------------------------------------------------------------------------

    def local_storages(self, project_id: int) -> list[dict[str, Any]]:
        return _plain(
            self._call(
                f"list local storages of project {project_id}",
                lambda: self._sdk.import_storage.local.list(project=project_id),
            )
        )

    def create_local_storage(self, project_id: int, path: str, title: str) -> dict[str, Any]:
        """A Local Files import storage over ``path`` (a directory under the server's
        ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``); it is never synced, it only lets the server
        serve files under ``path`` to the project's users."""
        return _plain(
            self._call(
                f"create a local storage for project {project_id}",
                lambda: self._sdk.import_storage.local.create(
                    project=project_id,
                    path=path,
                    title=title,
                    use_blob_urls=False,
                    regex_filter="",
                    recursive_scan=False,
                ),
            )
        )

    def fetch_status(self, path: str) -> int:
        """The HTTP status of GET ``path`` with the token (e.g. a ``/data/local-files/`` URL)."""
        # Raw: serving media is not an API call.
        return self._raw("GET", path).status_code

    # --- tasks, predictions, annotations --------------------------------------------------

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create tasks (with their ``predictions``); returns the new task ids."""
        reply = self._call(
            f"import tasks into project {project_id}",
            lambda: self._sdk.projects.import_tasks(
                id=project_id, request=[dict(t) for t in tasks], return_task_ids=True
            ),
        )
        return [int(i) for i in _plain(reply).get("task_ids") or []]

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its data, annotations and predictions."""
        return self._pages(
            f"list tasks of project {project_id}",
            lambda: self._sdk.tasks.list(project=project_id, fields="all", page_size=_PAGE_SIZE),
        )

    def create_prediction(
        self, task_id: int, result: list[dict[str, Any]], model_version: str, score: float
    ) -> dict[str, Any]:
        return _plain(
            self._call(
                f"create a prediction on task {task_id}",
                lambda: self._sdk.predictions.create(
                    task=task_id, result=result, model_version=model_version, score=score
                ),
            )
        )

    def delete_prediction(self, prediction_id: int) -> None:
        self._call(
            f"delete prediction {prediction_id}",
            lambda: self._sdk.predictions.delete(id=prediction_id),
        )

    def update_task(self, task_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a task's ``data`` (its annotations and predictions are kept)."""
        return _plain(
            self._call(
                f"update task {task_id}",
                lambda: self._sdk.tasks.update(id=task_id, data=dict(data)),
            )
        )

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **fields: Any) -> dict:
        """An annotation on a task, as a reviewer submits it in the UI."""
        return _plain(
            self._call(
                f"annotate task {task_id}",
                lambda: self._sdk.annotations.create(id=task_id, result=result, **fields),
            )
        )


def _detail(data: Any) -> str:
    """The useful part of an error reply's body."""
    if isinstance(data, str):
        return data[:300].strip() or "(no detail)"
    if isinstance(data, dict):
        for key in ("validation_errors", "detail", "message", "error"):
            if data.get(key):
                return json.dumps(data[key])[:600] if not isinstance(data[key], str) else data[key]
    return json.dumps(data)[:300]
