"""Open a review task in headless Chromium and check that it renders with its media.

This is how a person would look at an exported task, done by a program: log in to Label Studio
(session cookie), open the task in Debian's ``chromium`` (headless) through the Chrome DevTools
protocol over a pipe (``--remote-debugging-pipe``: no websocket library, no port), wait (bounded)
until the gallery's frames have loaded and the clip can play, and take a screenshot.

Example:
    >>> shown = render_task(url, "me@x", "pw", 1, 3, media=[sheet_url], screenshot="task.png")  # doctest: +SKIP
    >>> shown.fetched, shown.video_ready  # doctest: +SKIP
    ({'/data/local-files/?d=…/sheet.jpg': 200}, True)
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = ["BrowserError", "TaskRender", "find_chromium", "login_cookies", "render_task"]

_READ_CHUNK = 1 << 16


class BrowserError(RuntimeError):
    """Chromium is missing, crashed, or did not answer in time."""


@dataclass
class TaskRender:
    """What the browser saw on a task page.

    Attributes:
        url: the page opened.
        fetched: HTTP status of each media URL the page fetched (absent: not fetched).
        images: the decoded ``<img>`` elements' pixels, RGB uint8 arrays.
        video_ready: the clip's ``<video>`` reached ``readyState >= 2`` (a frame is decoded).
        video_size: the clip's decoded ``(width, height)``.
        text: the page's visible text (the question should be in it).
        screenshot: where the PNG went, if asked for.
        seconds: wall time from navigation to the end of the checks.
    """

    url: str
    fetched: dict[str, int] = field(default_factory=dict)
    images: list[Any] = field(default_factory=list)
    video_ready: bool = False
    video_size: tuple[int, int] = (0, 0)
    text: str = ""
    screenshot: Path | None = None
    seconds: float = 0.0


def _decode_png(data_url: str) -> Any:
    import io

    import numpy as np
    from PIL import Image

    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def find_chromium() -> str | None:
    """``$FRAMESEL_CHROMIUM`` or the first of chromium / chromium-browser on PATH."""
    named = os.environ.get("FRAMESEL_CHROMIUM")
    if named:
        return named if os.access(named, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def login_cookies(url: str, username: str, password: str) -> dict[str, str]:
    """Log in to Label Studio's web UI with a password; returns the session cookies.

    Raises:
        BrowserError: the login page refused the credentials.
    """
    import httpx

    with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as client:
        page = client.get("/user/login/")
        csrf = client.cookies.get("csrftoken")
        if page.status_code != 200 or not csrf:
            raise BrowserError(
                f"{url}/user/login/ answered {page.status_code} without a CSRF cookie"
            )
        reply = client.post(
            "/user/login/",
            data={"email": username, "password": password, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{url}/user/login/"},
        )
        session = client.cookies.get("sessionid")
        if reply.status_code not in (302, 303) or not session:
            raise BrowserError(f"logging in to {url} as {username!r} failed ({reply.status_code})")
        return {"sessionid": session, "csrftoken": client.cookies.get("csrftoken") or csrf}


class _DevTools:
    """Chrome DevTools protocol over ``--remote-debugging-pipe`` (NUL-separated JSON on fds 3/4)."""

    def __init__(self, chromium: str, profile: Path, width: int, height: int, stderr: Any) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [
            chromium,
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]

        def wire_fds() -> None:  # the child sees the pipes as fds 3 (read) and 4 (write)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=wire_fds,  # only dup2 before exec (no locks taken)
            # fds 3 and 4 exist only after wire_fds; pass_fds keeps them across exec.
            pass_fds=(3, 4),
            start_new_session=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        os.set_blocking(self._from_browser, False)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def call(
        self, method: str, params: dict | None = None, timeout: float = 30.0, session: bool = True
    ) -> dict[str, Any]:
        import select

        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise BrowserError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"Chromium did not answer {method} within {timeout:.0f} s")
            if self.process.poll() is not None:
                raise BrowserError(f"Chromium exited ({self.process.returncode}) during {method}")
            ready, _, _ = select.select([self._from_browser], [], [], min(left, 0.5))
            if ready:
                with contextlib.suppress(BlockingIOError):
                    self._buffer += os.read(self._from_browser, _READ_CHUNK)

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        return result.get("result", {}).get("value")

    def close(self) -> None:
        with contextlib.suppress(OSError, BrowserError):
            self.call("Browser.close", session=False, timeout=5)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)


# What a reviewer would see: the media the page fetched (and their HTTP status), the images it
# decoded (as PNG data URLs: blob images are same-origin, so a canvas may read them), the clip's
# readiness and the page text.
_PROBE = """(() => {
  const want = %s;
  const fetched = {};
  for (const e of performance.getEntriesByType('resource')) {
    const hit = want.find(u => e.name.endsWith(u));
    if (hit) fetched[hit] = e.responseStatus || 0;
  }
  const images = [];
  for (const i of document.images) {
    if (!(i.complete && i.naturalWidth > 0)) continue;
    const c = document.createElement('canvas');
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    c.getContext('2d').drawImage(i, 0, 0);
    images.push(c.toDataURL('image/png'));
  }
  const v = document.querySelector('video');
  return {fetched, images, video: v ? v.readyState : -1, vw: v ? v.videoWidth : 0,
          vh: v ? v.videoHeight : 0, text: document.body ? document.body.innerText : ''};
})()"""


def render_task(
    url: str,
    username: str,
    password: str,
    project_id: int,
    task_id: int,
    media: list[str],
    min_images: int = 1,
    screenshot: str | os.PathLike[str] | None = None,
    timeout: float = 45.0,
    size: tuple[int, int] = (1400, 2600),
) -> TaskRender:
    """Open ``/projects/ID/data?task=TASK`` in headless Chromium and wait until the page has
    fetched every URL of ``media``, decoded at least ``min_images`` images and a frame of the
    clip (or ``timeout`` passes).

    Args:
        url: the Label Studio server.
        username, password: a user of the project (the session log-in of the web UI).
        project_id, task_id: the task to open.
        media: media URLs as in the task data (``/data/local-files/?d=…``) the page must fetch.
        min_images: decoded ``<img>`` elements to wait for.
        screenshot: write a full-page PNG here.
        timeout: seconds to wait for the media.
        size: the browser window.

    Returns:
        A `TaskRender`; the caller decides what counts as rendered.

    Raises:
        BrowserError: Chromium is missing, crashed or stopped answering.
    """
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError("no chromium on PATH (scripts/setup_chromium.sh installs Debian's)")
    cookies = login_cookies(url, username, password)
    host = urlparse(url).hostname or "127.0.0.1"
    page_url = f"{url}/projects/{project_id}/data?task={task_id}"
    render = TaskRender(url=page_url)
    with tempfile.TemporaryDirectory(prefix="framesel-chromium-") as profile:
        log = open(Path(profile) / "chromium.log", "wb")  # noqa: SIM115 - closed below
        tools = _DevTools(chromium, Path(profile), *size, stderr=log)
        try:
            target = tools.call("Target.createTarget", {"url": "about:blank"}, session=False)
            attached = tools.call(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
                session=False,
            )
            tools.session = attached["sessionId"]
            tools.call("Page.enable")
            tools.call("Network.enable")
            for name, value in cookies.items():
                tools.call(
                    "Network.setCookie", {"name": name, "value": value, "domain": host, "path": "/"}
                )
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False},
            )
            start = time.monotonic()
            tools.call("Page.navigate", {"url": page_url})
            probe = _PROBE % json.dumps(sorted(set(media)))
            state: dict[str, Any] = {}
            while time.monotonic() - start < timeout:
                state = tools.evaluate(probe) or {}
                if (
                    len(state.get("fetched") or {}) >= len(set(media))
                    and len(state.get("images") or []) >= min_images
                    and state.get("video", -1) >= 2
                ):
                    break
                time.sleep(0.5)
            time.sleep(0.5)  # let the last layout settle before the picture
            render.seconds = time.monotonic() - start
            render.fetched = dict(state.get("fetched") or {})
            render.images = [_decode_png(u) for u in state.get("images") or []]
            render.video_ready = int(state.get("video", -1)) >= 2
            render.video_size = (int(state.get("vw", 0)), int(state.get("vh", 0)))
            render.text = str(state.get("text", ""))
            if screenshot is not None:
                shot = tools.call(
                    "Page.captureScreenshot",
                    {"format": "png", "captureBeyondViewport": True},
                    timeout=60,
                )
                render.screenshot = Path(screenshot)
                render.screenshot.write_bytes(base64.b64decode(shot["data"]))
        except BrowserError as err:
            log.flush()
            tail = (Path(profile) / "chromium.log").read_text(errors="replace")[-1500:]
            raise BrowserError(f"{err}; chromium log tail:\n{tail}") from err
        finally:
            tools.close()
            log.close()
    return render
