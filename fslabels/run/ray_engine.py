"""Label runs on Ray Data: the stages of `fslabels.run` across a cluster, with the same results.

`run_labels_ray` (``framesel labels run --engine ray [--address ADDRESS]``, or
``run_labels(..., engine="ray")``) plans each video's work on the driver from the run store
(`fslabels.run.VideoWork`, as the local engine does) and streams the videos that have work
through one Ray Data pipeline::

    videos with work ─► decode pool     CPU actors; each video is decoded once, its frames go to
                                        the object store (sharded by video: one video per block)
                     ─► backend pools   one actor pool per distinct backend; each actor loads its
                                        model once and runs that backend's stages on a video:
                                        captions, spatial (several questions per backend call),
                                        temporal (stages with identical backend settings share
                                        one pool, as they share one model in the local engine)
                     ─► driver          the fused rows, then all the video's records in ONE
                                        transaction of the run store

**Same results.** Workers run the very `VideoWork` steps of the local engine (same cache and
retry decisions, same request batches, which never span videos), so the records are the same,
under the same fingerprints; the driver checks each record's fingerprint against its own before
writing. Only the driver writes, to its local ``WORKDIR/run.sqlite`` (never SQLite over a
network filesystem), so ``labels status``, resume and ``labels build`` behave as with the local
engine, and a re-run needs neither engine in particular.

**Crashes.** A backend that cannot load on its actors stops the run with `BackendLoadError`
before any record is written (the driver commits the videos that need no worker, e.g. whose
fused rows only are to redo, after the pipeline). A killed driver loses the videos in flight
(their records are committed per video); a re-run resumes from the store. A worker process
that dies (out of memory, segfault, a lost node) is restarted by Ray and its in-flight video is
retried up to ``max_task_retries`` times; a video that never comes back (a poisoned item) is
recorded as failed against its first stage still to do, naming the cause, and the run goes on.
An exception raised while computing a unit (a bug, an unexpected input) is recorded at once
against that unit, with its type and message (as the local engine does). ``--retry-failed``
retries both, as with the local engine.

**Resources.** The ``decoders`` decode actors take ``decode_cpus`` CPUs each. A pool's actors take
``cpus_per_actor`` CPUs and ``num_gpus`` GPUs each: by default 1 GPU for a transformers backend
on ``device: cuda`` and ``tensor_parallel_size`` GPUs for vllm when the cluster has GPUs, 0
otherwise (the openai backend: requests in flight are at most ``actors`` x its
``concurrency``). Batch sizes are the run config's (``<stage>.batch_size`` requests per backend
call, ``backend_options.batch_size`` per forward pass): the engine adds none of its own.

Example:
    >>> from fslabels.run.ray_engine import RayEngineConfig, run_labels_ray
    >>> summary = run_labels_ray(config, "manifest.jsonl", "videos", "work",
    ...                          options=RayEngineConfig(address="auto", actors=8))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import socket
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fslabels._hashing import stable_hash
from fslabels.backends import BACKENDS, register_backend
from fslabels.config import LabelRunConfig
from fslabels.manifest import LabelItem
from fslabels.run.context import MODEL_STAGES, BackendLoadError, LabelContext
from fslabels.run.plan import Step, VideoWork
from fslabels.run.session import ProgressBars, Run, RunSummary, Session
from fsmodel._imports import require

__all__ = ["RayEngineConfig", "run_labels_ray"]

logger = logging.getLogger(__name__)

_NO_FRAMES = np.zeros((0, 0, 0, 3), dtype=np.uint8)


def _per_stage(name: str, value: Any, minimum: float, kind: type) -> None:
    values = value.items() if isinstance(value, Mapping) else [("", value)]
    for stage, v in values:
        if stage and stage not in MODEL_STAGES:
            raise ValueError(
                f"{name} has unknown stage {stage!r}; stages: {', '.join(MODEL_STAGES)}"
            )
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum:
            raise ValueError(
                f"{name}{'.' + stage if stage else ''} must be a number >= {minimum}, got {v!r}"
            )
        if kind is int and not isinstance(v, int):
            raise ValueError(f"{name}{'.' + stage if stage else ''} must be an integer, got {v!r}")


@dataclass
class RayEngineConfig:
    """How the Ray engine uses a cluster. Nothing here changes labels or fingerprints.

    Args:
        address: the cluster to use: ``None``: Ray's default (the instance ``ray start``
            started on this machine, else a new local one); ``"auto"`` joins the cluster this
            node belongs to; ``"HOST:PORT"`` joins the head node's GCS (``ray start --head
            --port=PORT``); ``"ray://HOST:10001"`` uses Ray Client. When Ray is already
            initialised in this process, that instance is used as it is.
        actors: actors per backend pool: one number, or ``{stage: number}`` (a pool serving
            several stages takes the largest of theirs; unnamed stages get 1).
        cpus_per_actor: CPUs each actor reserves (a number or ``{stage: number}``).
        num_gpus: GPUs each actor reserves (a number or ``{stage: number}``); ``None``: from
            the backend's settings (see the module docstring).
        decoders: actors of the decode pool (each decodes one video at a time; one keeps
            several GPUs busy, as decoding a video takes far less than labelling it).
        decode_cpus: CPUs each decoder reserves.
        max_task_retries: times a video whose worker process died is retried before it is
            recorded as failed.
        init_options: further ``ray.init`` arguments (``num_cpus``, ``object_store_memory``,
            ``runtime_env`` ...) when the engine starts or joins Ray itself.

    Raises:
        ValueError: naming the field, the value and the rule.
    """

    address: str | None = None
    actors: int | dict[str, int] = 1
    cpus_per_actor: float | dict[str, float] = 1.0
    num_gpus: float | dict[str, float] | None = None
    decoders: int = 1
    decode_cpus: float = 1.0
    max_task_retries: int = 2
    init_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise ValueError(
                f"address must be 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got {self.address!r}"
            )
        _per_stage("actors", self.actors, 1, int)
        _per_stage("cpus_per_actor", self.cpus_per_actor, 0, float)
        if self.num_gpus is not None:
            _per_stage("num_gpus", self.num_gpus, 0, float)
        _per_stage("decoders", self.decoders, 1, int)
        _per_stage("decode_cpus", self.decode_cpus, 0, float)
        _per_stage("max_task_retries", self.max_task_retries, 0, int)
        if not isinstance(self.init_options, Mapping):
            raise ValueError(f"init_options must be a mapping, got {self.init_options!r}")
        self.init_options = dict(self.init_options)

    @classmethod
    def coerce(cls, value: RayEngineConfig | Mapping[str, Any] | None) -> RayEngineConfig:
        """A config from itself, a mapping of its fields (unknown keys are errors) or None."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"Ray engine options must be a mapping, got {type(value).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in value if k not in known]
        if unknown:
            raise ValueError(f"unknown Ray engine option(s) {unknown}; options: {', '.join(known)}")
        return cls(**dict(value))

    def for_stages(self, name: str, stages: Iterable[str], default: float) -> float:
        """A per-stage setting for a pool serving ``stages`` (the largest of theirs)."""
        value = getattr(self, name)
        if not isinstance(value, Mapping):
            return value
        return max(value.get(stage, default) for stage in stages)


# --- pools ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pool:
    """One actor pool: the stages it serves (sharing one backend) and its resources."""

    stages: tuple[str, ...]
    backend: str
    model: str
    actors: int
    num_cpus: float
    num_gpus: float

    @property
    def name(self) -> str:
        return "+".join(self.stages)


def _inferred_gpus(ctx: LabelContext, stage: str, cluster_gpus: float) -> float:
    """GPUs an actor of this stage's backend needs, read from its settings: a ``device`` on
    CUDA takes one; a ``tensor_parallel_size`` takes that many when the cluster has GPUs."""
    config = ctx.backends[stage].config
    device = getattr(config, "device", None)
    if isinstance(device, str) and device.startswith("cuda"):
        return 1.0
    parallel = getattr(config, "tensor_parallel_size", None)
    if isinstance(parallel, int) and cluster_gpus > 0:
        return float(parallel)
    return 0.0


def _pools(ctx: LabelContext, options: RayEngineConfig, cluster_gpus: float) -> list[_Pool]:
    """One pool per distinct backend, in stage order (so the captions pool comes first and the
    temporal stage, which reads captions, runs in it or after it)."""
    pools = []
    for stages in ctx.backend_groups():
        spec = getattr(ctx.config, stages[0])
        gpus = (
            options.for_stages("num_gpus", stages, 0.0)
            if options.num_gpus is not None
            else max(_inferred_gpus(ctx, stage, cluster_gpus) for stage in stages)
        )
        pools.append(
            _Pool(
                stages=stages,
                backend=spec.backend,
                model=spec.model,
                actors=int(options.for_stages("actors", stages, 1)),
                num_cpus=float(options.for_stages("cpus_per_actor", stages, 1.0)),
                num_gpus=float(gpus),
            )
        )
    return pools


# --- what runs on the workers --------------------------------------------------------------

# One context per worker process and config: building it loads nothing, but the pools' actors
# load their backends once and keep them for every video they are sent.
_CONTEXTS: dict[str, LabelContext] = {}


def _context(config: Mapping[str, Any], registry: Mapping[str, str]) -> LabelContext:
    """The run's context in a worker process, with the driver's plugin backends registered."""
    for name, target in registry.items():
        if BACKENDS.get(name) != target:
            register_backend(name, target)
    key = stable_hash(config)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = LabelContext(LabelRunConfig.from_dict(config))
    return _CONTEXTS[key]


def _pack(work: VideoWork, steps: list[Step], frames: Any) -> dict[str, np.ndarray]:
    """One video as a one-row Ray Data batch: its work and finished steps pickled together,
    its frames as a tensor (none once no later stage reads them)."""
    payload = np.empty(1, dtype=object)
    payload[0] = pickle.dumps((work, steps), protocol=pickle.HIGHEST_PROTOCOL)
    frames = _NO_FRAMES if frames is None else np.asarray(frames)
    return {"video": np.array([work.video]), "work": payload, "frames": frames[None]}


def _unpack(batch: Mapping[str, np.ndarray], i: int = 0) -> tuple[VideoWork, list[Step], Any]:
    work, steps = pickle.loads(batch["work"][i])
    frames = batch["frames"][i] if "frames" in batch else None
    if frames is not None and frames.size == 0:
        frames = None
    return work, steps, frames


def _concat(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(batches) == 1:
        return batches[0]
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


class _Decoder:
    """An actor of the decode pool: samples a video's candidates when it needs them (the video
    stack is imported once per actor, not once per task)."""

    def __init__(self, config: Mapping[str, Any], registry: Mapping[str, str]) -> None:
        import fsmodel.video  # noqa: F401  (imported at start-up, not in the first video's time)

        self.ctx = _context(config, registry)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for i in range(len(batch["work"])):
            work, steps, _ = _unpack(batch, i)
            frames, step = work.decode(self.ctx, isolate=True)
            steps.append(step)
            if work.meta is None:  # a bad video: its samples get no labels
                steps += work.blocked(self.ctx)
            out.append(_pack(work, steps, frames))
        return _concat(out)


# What a pool's actor runs for each stage it serves (in stage order), on one video.
_STAGE_STEPS: dict[str, Callable[[VideoWork, LabelContext, Any], list[Step]]] = {
    "captions": lambda work, ctx, frames: [work.caption(ctx, frames, isolate=True)],
    "spatial": lambda work, ctx, frames: list(work.spatial_steps(ctx, frames, isolate=True)),
    "temporal": lambda work, ctx, frames: list(work.temporal_steps(ctx, isolate=True)),
}


class _PoolWorker:
    """An actor of one backend pool: loads the backend once, then runs its stages per video.

    Raises (when created): `BackendLoadError` naming the stage, backend and model.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        registry: Mapping[str, str],
        stages: tuple[str, ...],
        keep_frames: bool,
    ) -> None:
        self.ctx = _context(config, registry)
        self.stages = stages
        self.keep_frames = keep_frames
        self.ctx.load(stages)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for i in range(len(batch["work"])):
            work, steps, frames = _unpack(batch, i)
            if work.meta is not None:
                for stage in self.stages:
                    steps += _STAGE_STEPS[stage](work, self.ctx, frames)
            out.append(_pack(work, steps, frames if self.keep_frames else None))
        return _concat(out)


# --- the driver ----------------------------------------------------------------------------


def _check_address(address: str) -> None:
    """Fail fast, naming the address, when no Ray head answers at ``HOST:PORT``."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(
            f"--address {address!r} is not 'auto', 'HOST:PORT' (e.g. 10.0.0.1:6379) or "
            "'ray://HOST:10001'"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as err:
        raise ConnectionError(
            f"no Ray cluster answers at --address {address} ({err}); start its head with "
            f"`ray start --head --port={port}`, or check the host and port"
        ) from None


@contextmanager
def _connect(ray: Any, options: RayEngineConfig) -> Iterator[bool]:
    """Ray for the run: the instance already initialised in this process (used as it is), or
    one the engine starts (``address=None``) or joins, shut down afterwards. Yields whether the
    engine initialised Ray."""
    if ray.is_initialized():
        yield False
        return
    address = options.address
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, **options.init_options}
    if address is None:
        kwargs.setdefault("include_dashboard", False)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as err:
        where = "on this node" if address == "auto" else f"at {address}"
        raise ConnectionError(
            f"cannot join a Ray cluster {where}: {err}. Start one with `ray start --head` "
            "(then pass its address), or omit --address to start a local Ray instance"
        ) from None
    try:
        yield True
    finally:
        ray.shutdown()


def _has_model_work(work: VideoWork) -> bool:
    """Whether the video needs a worker (decoding or a model stage), not just the driver."""
    if work.needs_decode():
        return True
    if work.meta is None:
        return False
    return work.captions_todo() or bool(work.spatial_todo()) or bool(work.temporal_todo())


def _lost_error(retries: int) -> str:
    return (
        f"was lost on the Ray cluster: no result came back after {retries + 1} attempt(s) (its "
        "worker process died each time, e.g. out of memory or a crash in a native library; see "
        "the Ray worker logs); retry with --retry-failed"
    )


def run_labels_ray(
    config: LabelRunConfig | Mapping[str, Any],
    manifest_or_items: str | os.PathLike[str] | Iterable[LabelItem],
    videos_root: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    progress: bool = True,
    retry_failed: bool = False,
    options: RayEngineConfig | Mapping[str, Any] | None = None,
) -> RunSummary:
    """`fslabels.run.run_labels` on Ray Data (see the module docstring): the same arguments,
    the same store, records and summary.

    Args:
        config, manifest_or_items, videos_root, workdir, progress, retry_failed: as for
            `fslabels.run.run_labels`.
        options: a `RayEngineConfig` or a mapping of its fields.

    Returns:
        A `RunSummary`; ``summary.engine`` says how the cluster was used and where the time went
        (``startup_seconds``: Ray up; ``first_result_seconds``: until the first video came back,
        actors and models loading included; ``pipeline_seconds``; ``commit_seconds``: the
        driver's store writes; ``lost_videos``).

    Raises:
        ImportError: ray is not installed (``pip install 'framesel[ray]'``).
        ConnectionError: no Ray cluster at ``options.address``.
        BackendLoadError: a pool's backend cannot load on its actors.
        ValueError, FileNotFoundError, StoreLockedError: as `run_labels`.
    """
    options = RayEngineConfig.coerce(options)
    ray = require("ray", extra="ray", purpose="the Ray engine (--engine ray)")
    require("ray.data", extra="ray", purpose="the Ray engine (--engine ray)")
    address = options.address
    if address is not None and address != "auto" and not address.startswith("ray://"):
        _check_address(address)  # before the store is touched
    with Session(config, manifest_or_items, videos_root, workdir) as session:
        ctx = session.ctx
        session.prepare(retry_failed)
        session.begin_run()
        engine: dict[str, Any] = {"name": "ray", "address": options.address, "videos_sent": 0}
        with ProgressBars(progress, session.totals()) as bars:
            run = Run(session.store, bars)
            # Videos without worker work (finished, failed for good, or only their fused rows
            # to redo) are the driver's, done after the pipeline: a backend that cannot load on
            # its actors then stops the run before any record is written.
            remote, driver_only = [], []
            for work in session.plans(retry_failed):
                (remote if _has_model_work(work) else driver_only).append(work)
            if remote:
                engine.update(_run_remote(ray, ctx, remote, run, options))
            for work in driver_only:
                run.apply(work.steps(ctx), together=True)
            engine["commit_seconds"] = run.commit_seconds
        return session.finish(run.stats, engine)


def _run_remote(
    ray: Any,
    ctx: LabelContext,
    works: list[VideoWork],
    run: Run,
    options: RayEngineConfig,
) -> dict[str, Any]:
    """Stream ``works`` through the pipeline; commit each video as it comes back."""
    started = time.perf_counter()
    fingerprints = ctx.fingerprints.as_dict()
    info: dict[str, Any] = {"videos_sent": len(works), "lost_videos": 0}
    with _connect(ray, options) as started_here:
        info["started_ray"] = started_here
        info["startup_seconds"] = time.perf_counter() - started
        pools = _pools(ctx, options, float(ray.cluster_resources().get("GPU", 0.0)))
        info["pools"] = [
            {**dataclasses.asdict(pool), "stages": list(pool.stages)} for pool in pools
        ]
        data_context = ray.data.DataContext.get_current()
        saved = {
            "max_errored_blocks": data_context.max_errored_blocks,
            "enable_progress_bars": data_context.enable_progress_bars,
        }
        # A video whose block fails for good is dropped, not the run: the driver records it.
        data_context.max_errored_blocks = -1
        data_context.enable_progress_bars = False  # the run's own bars say it
        try:
            dataset = _pipeline(ray, ctx, works, pools, options)
            pending = {work.video: work for work in works}
            first = None
            try:
                for batch in dataset.iter_batches(batch_size=1, batch_format="numpy"):
                    for i in range(len(batch["work"])):
                        work, steps, _ = _unpack(batch, i)
                        if work.video not in pending:
                            continue  # a duplicate of a retried task
                        _check_fingerprints(steps, fingerprints, work.video)
                        if work.meta is not None:
                            steps.append(work.fuse(ctx))
                        run.apply(steps, together=True)
                        del pending[work.video]
                        first = first or time.perf_counter() - started
            except Exception as err:
                raise _explained(err) from err
            info["first_result_seconds"] = first
            info["ray_data_stats"] = dataset.stats()
            error = _lost_error(options.max_task_retries)
            for work in pending.values():  # dropped after its retries: a poisoned video
                logger.error("video %s: %s", work.video, error)
                run.apply(work.steps(ctx, lost=f"video {work.video} {error}"), together=True)
            info["lost_videos"] = len(pending)
        finally:
            for key, value in saved.items():
                setattr(data_context, key, value)
    info["pipeline_seconds"] = time.perf_counter() - started - info["startup_seconds"]
    return info


def _pipeline(
    ray: Any,
    ctx: LabelContext,
    works: list[VideoWork],
    pools: list[_Pool],
    options: RayEngineConfig,
) -> Any:
    """The Ray Data pipeline: the videos (one per block), the decode pool, the backend pools."""
    config = ctx.config.to_dict()
    registry = dict(BACKENDS)
    rows = [_pack(work, [], None) for work in works]
    dataset = ray.data.from_items(
        [{"video": row["video"][0], "work": row["work"][0]} for row in rows],
        override_num_blocks=len(rows),  # one video per block: a failure drops one video
    )
    last_frames = max(
        i for i, pool in enumerate(pools) if {"captions", "spatial"} & set(pool.stages)
    )
    stages: list[tuple[type, dict[str, Any], int, float, float]] = [
        (_Decoder, {}, options.decoders, options.decode_cpus, 0.0)
    ]
    for i, pool in enumerate(pools):
        kwargs = {"stages": pool.stages, "keep_frames": i < last_frames}
        stages.append((_PoolWorker, kwargs, pool.actors, pool.num_cpus, pool.num_gpus))
    for cls, kwargs, actors, cpus, gpus in stages:
        with warnings.catch_warnings():
            # max_task_retries has no named parameter in map_batches (Ray 2.60)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            dataset = dataset.map_batches(
                cls,
                fn_constructor_kwargs={"config": config, "registry": registry, **kwargs},
                batch_size=1,
                # one video at a time per actor: a poisoned video that kills its actor
                # costs no other video its retries
                compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
                num_cpus=cpus,
                num_gpus=gpus,
                max_restarts=-1,
                max_task_retries=options.max_task_retries,
            )
    return dataset


def _check_fingerprints(steps: list[Step], fingerprints: Mapping[str, str], video: str) -> None:
    """Refuse records a worker made under other settings (another framesel or config)."""
    for step in steps:
        for record in step.records:
            if record.fingerprint != fingerprints[record.stage]:
                raise RuntimeError(
                    f"a Ray worker labelled video {video} under {record.stage} fingerprint "
                    f"{record.fingerprint}, the driver expects {fingerprints[record.stage]}: "
                    "the cluster's nodes run another framesel version than the driver"
                )


def _explained(err: Exception) -> Exception:
    """A pipeline failure as the error the user can act on: an actor whose backend cannot load
    fails the pipeline with a Ray error wrapping `BackendLoadError`; its message is kept."""
    cause: BaseException | None = err
    for _ in range(20):  # the wrapped causes, bounded
        if cause is None or isinstance(cause, BackendLoadError):
            break
        cause = getattr(cause, "cause", None) or cause.__cause__
    if isinstance(cause, BackendLoadError):
        return BackendLoadError(str(cause))
    for line in str(err).splitlines():  # a cause Ray passed on as text only
        if "BackendLoadError: " in line:
            return BackendLoadError(line.split("BackendLoadError: ", 1)[1].strip())
    return err
