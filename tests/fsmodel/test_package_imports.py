"""`import fsmodel` is light, and still registers the selector with the Auto classes.

Each case runs in a fresh interpreter: what a module imports is only visible before anything else
has imported it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_layering import CONTRACT as LAYERING_CONTRACT

REPO_ROOT = Path(__file__).resolve().parents[2]
# The contract layer as the layering rules name it (the package and its import hook included).
CONTRACT = tuple(sorted(LAYERING_CONTRACT))


def _run(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_contract_layer_loads_neither_torch_nor_transformers():
    got = _run(
        f"""
        import json, sys
        from fsmodel.video import sample_candidates
        for name in {CONTRACT!r}:
            __import__(name)
        heavy = [m for m in ("torch", "transformers", "datasets") if m in sys.modules]
        # VmHWM: this process's peak RSS (ru_maxrss would count the parent's, from the fork)
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        rss_mb = int(status.split()[0]) / 1024
        print(json.dumps({{"heavy": heavy, "rss_mb": rss_mb}}))
        """
    )
    assert got["heavy"] == []
    assert got["rss_mb"] <= 120, got


def test_the_selector_classes_are_attributes_loaded_on_first_use():
    got = _run(
        """
        import json, sys
        import fsmodel
        before = "torch" in sys.modules
        cls = fsmodel.FrameSelectorModel
        print(json.dumps({"before": before, "after": "torch" in sys.modules,
                          "module": cls.__module__, "dir": "FrameSelectorConfig" in dir(fsmodel)}))
        """
    )
    assert got == {
        "before": False,
        "after": True,
        "module": "fsmodel.modeling_frame_selector",
        "dir": True,
    }
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        import fsmodel

        _ = fsmodel.NoSuchThing


@pytest.mark.parametrize(
    "imports",
    [
        "import fsmodel\nfrom transformers import AutoConfig, AutoModel, AutoProcessor",
        "from transformers import AutoConfig, AutoModel, AutoProcessor\nimport fsmodel",
        "import fsmodel.video\nfrom transformers import AutoModel, AutoProcessor, AutoConfig",
        # A model class first: transformers imports its auto classes half-way through that.
        "import fsmodel\nfrom transformers import Qwen2ForCausalLM\n"
        "from transformers import AutoConfig, AutoModel, AutoProcessor",
        "from transformers import Qwen2ForCausalLM\nimport fsmodel\n"
        "from transformers import AutoConfig, AutoModel, AutoProcessor",
    ],
    ids=[
        "fsmodel-first",
        "transformers-first",
        "sampler-then-transformers",
        "fsmodel-then-a-model-class",
        "a-model-class-then-fsmodel",
    ],
)
def test_auto_classes_load_a_saved_selector_in_either_order(imports, tiny_models):
    got = _run(
        imports
        + textwrap.dedent(
            f"""
            import json
            path = {str(tiny_models["selector"])!r}
            model = AutoModel.from_pretrained(path)
            processor = AutoProcessor.from_pretrained(path)
            config = AutoConfig.from_pretrained(path)
            print(json.dumps([type(x).__module__ + "." + type(x).__name__
                              for x in (model, processor, config)]))
            """
        )
    )
    assert got == [
        "fsmodel.modeling_frame_selector.FrameSelectorModel",
        "fsmodel.processing_frame_selector.FrameSelectorProcessor",
        "fsmodel.configuration_frame_selector.FrameSelectorConfig",
    ]


def test_a_selector_saved_from_a_directly_imported_module_carries_its_auto_map(tmp_path):
    got = _run(
        f"""
        import json
        from fsmodel.tiny import build_tiny_selector  # imports the model module itself
        build_tiny_selector({str(tmp_path)!r})
        print(json.dumps(json.load(open({str(tmp_path / "config.json")!r}))["auto_map"]))
        """
    )
    assert got == {
        "AutoConfig": "configuration_frame_selector.FrameSelectorConfig",
        "AutoModel": "modeling_frame_selector.FrameSelectorModel",
    }


def test_a_registration_that_cannot_import_never_breaks_transformers():
    # As in the vLLM venv, whose older transformers lacks what the selector's config needs.
    got = _run(
        """
        import importlib.abc, json, logging, sys

        class Broken(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "fsmodel.configuration_frame_selector":
                    raise ImportError("an older transformers")
                return None

        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
        sys.meta_path.insert(0, Broken())
        import fsmodel
        from transformers import AutoConfig, AutoModel  # must import all the same
        print(json.dumps({"config": AutoConfig.__name__, "model": AutoModel.__name__}))
        """
    )
    assert got == {"config": "AutoConfig", "model": "AutoModel"}
