"""The locks in scripts/locks/: up to date with their inputs, and every venv holds exactly its lock.

scripts/setup*.sh check a venv against its lock right after installing it; these tests check the
venvs the suite runs with, however they were made, and that nobody changed pyproject.toml's
requirements or a lock input without `make lock`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("framesel_locks", ROOT / "scripts" / "locks.py")
locks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(locks)

# The python of each test venv: as the Makefile names it, else the venv's default place.
_VENV_PYTHONS = {
    "vllm": os.environ.get("FRAMESEL_VLLM_PYTHON") or str(ROOT / ".venv-vllm/bin/python"),
    "lmms": os.environ.get("FRAMESEL_LMMS_PYTHON") or str(ROOT / ".venv-lmms/bin/python"),
    "labelstudio": str(
        Path(os.environ["FRAMESEL_LABEL_STUDIO"]).with_name("python")
        if os.environ.get("FRAMESEL_LABEL_STUDIO")
        else ROOT / ".venv-labelstudio/bin/python"
    ),
}


def test_every_lock_is_up_to_date_with_its_inputs():
    assert locks.lock_names() == ["labelstudio", "lmms", "main", "vllm"]
    assert locks.stale_locks() == []


def test_the_running_venv_is_the_main_lock():
    # scripts/setup.sh stamps the venv it made; its suffix says which torch build it chose.
    stamp = Path(sys.prefix) / ".framesel-lock"
    if not stamp.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{sys.prefix} was not made by scripts/setup.sh (no {stamp.name})")
        pytest.skip(f"{sys.prefix} was not made by scripts/setup.sh (installed by hand?)")
    cuda = stamp.read_text().strip().endswith("-cuda")
    # In a fresh interpreter: this one's sys.path grows with what the suite imported (Ray puts
    # its bundled third-party packages on it), which is not what the venv holds.
    command = [sys.executable, str(ROOT / "scripts" / "locks.py"), "check-venv", "main"]
    done = subprocess.run(
        command + ["--cuda-torch"] * cuda, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", sorted(_VENV_PYTHONS))
def test_each_test_venv_is_its_lock(name):
    python = _VENV_PYTHONS[name]
    if not Path(python).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the {name} venv is missing under CI ({python}); `make test` builds it")
        pytest.skip(f"the {name} venv is not built here (make setup-{name})")
    done = subprocess.run(
        [python, str(ROOT / "scripts" / "locks.py"), "check-venv", name],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_every_lock_pins_every_package_with_hashes():
    for name in locks.lock_names():
        text = (locks.LOCK_DIR / f"{name}.txt").read_text()
        pins, header = locks.read_lock(name)
        assert len(pins) > 20, name
        assert text.count("--hash=sha256:") >= len(pins), name
        assert header["exclude"] == ",".join(locks.excluded(name)), name
        # The excluded packages are really left out.
        assert not set(locks.excluded(name)) & set(pins), name
    # The CPU torch where a lock says nothing; PyPI's (CUDA) build with its torchvision where it
    # says `# torch: pypi` (.venv-lmms, the stack GPU users have).
    for name in ("main", "vllm"):
        assert locks.torch_build(name) == "cpu"
        assert locks.read_lock(name)[0]["torch"].endswith("+cpu"), name
    assert locks.torch_build("lmms") == "pypi"
    lmms = locks.read_lock("lmms")[0]
    assert "+" not in lmms["torch"] and "torchvision" in lmms
    # The known break: lmms-eval 0.7.3 imports filelock._api, gone in filelock 4.3.
    major, minor = (int(p) for p in locks.read_lock("lmms")[0]["filelock"].split(".")[:2])
    assert (major, minor) < (4, 3)


@pytest.fixture
def fake_locks(tmp_path, monkeypatch):
    """A project with one environment `env`: pyproject.toml, scripts/locks/env.{in,txt}."""
    (tmp_path / "scripts" / "locks").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.setattr(locks, "ROOT", tmp_path)
    monkeypatch.setattr(locks, "LOCK_DIR", tmp_path / "scripts" / "locks")
    (locks.LOCK_DIR / "env.in").write_text("# pyproject: dev\n# exclude: torchvision\nfoo==1\n")
    (locks.LOCK_DIR / "env.txt").write_text(
        f"# framesel-lock: inputs={locks.inputs_hash('env')} exclude=torchvision\n"
        "foo==1.0 \\\n    --hash=sha256:aa\n    # via -r env.in\n"
        "torch==2.13.0+cpu \\\n    --hash=sha256:bb \\\n    --hash=sha256:cc\n"
        "    # via\n    #   foo\n"
        "zed-pkg==3.1 \\\n    --hash=sha256:dd\n"
    )
    return tmp_path


def test_a_changed_requirement_makes_the_lock_stale(fake_locks):
    assert locks.stale_locks() == []
    pyproject = fake_locks / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pillow>=10"', '"pillow>=11"'))
    assert locks.stale_locks() == [
        "scripts/locks/env.txt is out of date with scripts/locks/env.in and pyproject.toml: "
        "run `make lock` and commit the result"
    ]


def test_venv_problems_name_each_difference(fake_locks):
    lock = {"foo": "1.0", "torch": "2.13.0+cpu", "zed-pkg": "3.1"}
    assert locks.venv_problems("env", {**lock, "pip": "25.0", "framesel": "0.1"}) == []
    have = {"foo": "1.1", "torch": "2.13.0+cpu", "torchvision": "0.28.0", "extra": "1"}
    assert locks.venv_problems("env", have) == [
        "foo 1.1 (lock: 1.0)",
        "zed-pkg missing (lock: 3.1)",
        "extra 1 installed but not in the lock",
        "torchvision 0.28.0 installed but excluded from this venv",
    ]
    # A GPU set-up: the locked torch version of any build, with its CUDA libraries beside it.
    gpu = {**lock, "torch": "2.13.0", "nvidia-cublas": "13.0", "triton": "3.5"}
    assert locks.venv_problems("env", gpu, cuda_torch=True) == []
    assert locks.venv_problems("env", {**gpu, "torch": "2.14.1"}, cuda_torch=True) == [
        "torch 2.14.1 (lock: 2.13.0 of any build)"
    ]


def test_lock_entries_split_one_package_out(fake_locks):
    only = locks.lock_entries("env", "torch", keep=True)
    assert only.splitlines() == [
        "torch==2.13.0+cpu \\",
        "    --hash=sha256:bb \\",
        "    --hash=sha256:cc",
        "    # via",
        "    #   foo",
    ]
    rest = locks.lock_entries("env", "torch", keep=False)
    assert rest.splitlines()[1:] == [
        "foo==1.0 \\",
        "    --hash=sha256:aa",
        "    # via -r env.in",
        "zed-pkg==3.1 \\",
        "    --hash=sha256:dd",
    ]


def test_check_venv_command_exits_non_zero_on_a_difference(fake_locks):
    # The command the set-up scripts run, on this interpreter's environment (not the fake lock).
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "locks.py"), "check-venv", "main"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert locks.main(["check-venv", "env"]) == 1
