"""What a label run is made of: its `LabelContext` (backends and labelers built from the run
config) and the `Fingerprints` that key every stage's records."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fslabels._hashing import stable_hash
from fslabels.backends import Backend, get_backend
from fslabels.config import LabelRunConfig, StageConfig
from fslabels.spatial import SpatialLabeler
from fslabels.temporal import Captioner, TemporalLabeler

# Versions the fill rule above: a change of rule keys new fused rows.
FUSION_RULE = "fill-failed-with-zeros/v1"
FILL_VALUE = 0.0
MODEL_STAGES = ("captions", "spatial", "temporal")


class BackendLoadError(ValueError):
    """A stage's backend cannot load (a missing model or API key ...)."""


# --- fingerprints and the labelling context ---------------------------------------------------


@dataclass(frozen=True)
class Fingerprints:
    """The fingerprint of each stage (see the module docstring)."""

    candidates: str
    captions: str
    spatial: str
    temporal: str
    fused: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class LabelContext:
    """The labelers, backends and fingerprints of one run config: what a worker needs.

    Args:
        config: the run config.
        backends: ``{stage: backend}`` to use instead of building them from the config
            (``"captions"``, ``"spatial"``, ``"temporal"``); they are not unloaded by `close`.
            Stages with identical backend settings share one backend instance (the default
            captions and spatial stages share one Qwen2-VL).

    Building a context loads nothing: backends load on their first request.
    """

    def __init__(
        self, config: LabelRunConfig, backends: Mapping[str, Backend] | None = None
    ) -> None:
        self.config = config
        given = dict(backends or {})
        unknown = [k for k in given if k not in MODEL_STAGES]
        if unknown:
            raise ValueError(f"backends has unknown stage(s) {unknown}; stages: {MODEL_STAGES}")
        self._owned: list[Backend] = []
        shared: dict[str, Backend] = {}
        self.backends: dict[str, Backend] = {}
        for stage in MODEL_STAGES:
            if stage in given:
                self.backends[stage] = given[stage]
                continue
            spec: StageConfig = getattr(config, stage)
            options = _backend_options(spec, config.prices)
            key = stable_hash({"backend": spec.backend, "model": spec.model, **options})
            if key not in shared:
                shared[key] = get_backend(spec.backend, model=spec.model, **options)
                self._owned.append(shared[key])
            self.backends[stage] = shared[key]
        self.spatial = SpatialLabeler(self.backends["spatial"], config.spatial)
        self.captioner = Captioner(self.backends["captions"], config.captions)
        self.temporal = TemporalLabeler(self.backends["temporal"], config.temporal)
        self.fingerprints = self._fingerprints()

    def _fingerprints(self) -> Fingerprints:
        config = self.config
        candidates = stable_hash(
            {
                "stage": "candidates",
                "num_candidates": config.num_candidates,
                "frame_size": config.frame_size,
                "reader": config.video_reader,
            }
        )
        captions = stable_hash({"candidates": candidates, **self.captioner.settings()})
        spatial = stable_hash({"candidates": candidates, **self.spatial.settings()})
        temporal = stable_hash({"captions": captions, **self.temporal.settings()})
        fused = stable_hash(
            {
                "stage": "fused",
                "spatial": spatial,
                "temporal": temporal,
                "weights": list(config.fusion.weights),
                "rule": FUSION_RULE,
            }
        )
        return Fingerprints(candidates, captions, spatial, temporal, fused)

    def settings(self) -> dict[str, Any]:
        """What produced the labels (for cards): each stage's settings and fingerprint."""
        return {
            "fingerprints": self.fingerprints.as_dict(),
            "captions": self.captioner.settings(),
            "spatial": self.spatial.settings(),
            "temporal": self.temporal.settings(),
            "fusion": {"weights": list(self.config.fusion.weights), "rule": FUSION_RULE},
        }

    def prompts(self) -> dict[str, dict[str, Any]]:
        """Each stage's prompt templates (what the settings' prompt hashes hash), for cards."""
        return {
            "spatial": self.spatial.prompts,
            "captions": self.captioner.prompts,
            "temporal": self.temporal.prompts,
        }

    def backend_groups(self) -> list[tuple[str, ...]]:
        """The model stages grouped by the backend instance they share, in stage order (the
        Ray engine runs one actor pool per group)."""
        groups: dict[int, list[str]] = {}
        for stage in MODEL_STAGES:
            groups.setdefault(id(self.backends[stage]), []).append(stage)
        return [tuple(stages) for stages in groups.values()]

    def load(self, stages: Sequence[str] = MODEL_STAGES) -> None:
        """Load the stages' backends now (default: every stage's), so a missing model or API
        key stops a run before any work rather than midway.

        Raises:
            BackendLoadError: naming the stage, backend and model, with the cause.
        """
        for stage in stages:
            backend = self.backends[stage]
            try:
                backend.load()
            except ImportError:
                raise
            except Exception as err:
                spec: StageConfig = getattr(self.config, stage)
                raise BackendLoadError(
                    f"cannot load the {stage} backend ({backend.name}, model {spec.model!r}): "
                    f"{type(err).__name__}: {err}"
                ) from err

    def close(self) -> None:
        """Unload the backends this context built."""
        for backend in self._owned:
            backend.unload()


def _backend_options(spec: StageConfig, prices: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """The stage's backend options, with the run's price table for backends that price."""
    from fslabels.backends import backend_class

    options = dict(spec.backend_options)
    fields = {f.name for f in dataclasses.fields(backend_class(spec.backend).config_class)}
    if "prices" in fields and "prices" not in options and prices:
        options["prices"] = {model: tuple(price) for model, price in prices.items()}
    return options
