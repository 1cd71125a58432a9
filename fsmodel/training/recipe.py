"""The training recipe of the frame selector, torchtune-style: ``setup`` → ``train`` →
``save_checkpoint`` (periodically) → ``cleanup``, for both stages of the paper.

- Stage 1: the vision tower and the LLM frozen; projector, score query and score head trained;
  importance BCE batches alternated with visual-instruction CE batches (captions).
- Stage 2: LoRA on the LLM plus the query and head (peft), BCE only. Saves the adapter
  (``adapter/``) and a merged selector (``final/``) that plain ``AutoModel`` loads.

Runs through accelerate's `Accelerator` (one CPU process here; ``accelerate launch`` / torchrun
for many GPUs: every rank takes its slice of each global batch). Everything random derives from
``seed`` (data order, caption frames, LoRA initialisation) or is checkpointed (RNG state for
dropout), so a run that is killed and resumed from its last checkpoint ends with the same
weights as one that never stopped.

Output directory::

    config.yaml                 the resolved config (paper defaults filled in)
    metrics.jsonl               one JSON line per step ("train") and evaluation ("eval")
    checkpoints/step-00000100/  trainable weights, optimiser, scheduler, RNG, trainer state
    final/                      the trained selector (+ processor, framesel_training.json)
    adapter/                    stage 2: the peft adapter

Example:
    >>> from fsmodel.training import TrainConfig, train_selector
    >>> result = train_selector(TrainConfig.from_yaml("stage1.yaml"))
    >>> result.final_dir
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fsmodel.training.config import SCHEDULERS, TrainConfig
from fsmodel.training.data import (
    CaptionVideo,
    FeatureCache,
    FrameSource,
    LabelSample,
    TrainingDataError,
    collate_bce,
    collate_ce,
    has_captions,
    is_local,
    load_captions,
    load_samples,
    split_by_video,
    weigh_hard_negatives,
)
from fsmodel.training.evaluate import EvalReport, evaluate_selector, score_samples

__all__ = [
    "METRICS_FILE",
    "TRAINING_RECORD",
    "SelectorTrainingRecipe",
    "TrainResult",
    "TrainerCallback",
    "TrainerState",
    "latest_checkpoint",
    "public_ref",
    "read_training_record",
    "train_selector",
]

METRICS_FILE = "metrics.jsonl"
# What a trained selector directory says about how it was made (read by the model card).
TRAINING_RECORD = "framesel_training.json"
_STATE_FILE = "trainer_state.json"
_TRAINABLE_FILE = "trainable.safetensors"


@dataclass
class TrainerState:
    """Where a run is: optimiser steps done, the epoch, and the step within it."""

    global_step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    total_steps: int = 0


@dataclass
class TrainResult:
    """What a finished run produced.

    Attributes:
        output_dir: the run directory.
        final_dir: the trained selector (``AutoModel.from_pretrained(final_dir)``).
        adapter_dir: stage 2's peft adapter (None for stage 1).
        steps: optimiser steps of the run.
        metrics: the last evaluation's summary (`EvalReport.summary`).
        resumed_from: the checkpoint step this process resumed from (None: a fresh start).
    """

    output_dir: Path
    final_dir: Path
    adapter_dir: Path | None
    steps: int
    metrics: dict[str, Any]
    resumed_from: int | None = None


class TrainerCallback:
    """Hooks the recipe calls (a progress bar, a test that interrupts a run). Override any."""

    def on_train_begin(self, state: TrainerState) -> None: ...

    def on_step(self, state: TrainerState, logs: dict[str, Any]) -> None: ...

    def on_eval(self, state: TrainerState, summary: dict[str, Any]) -> None: ...

    def on_train_end(self, state: TrainerState, result: TrainResult) -> None: ...


def _objective_class():
    import torch
    from torch import nn

    class SelectorObjective(nn.Module):
        """Both objectives behind one ``forward``, so DDP sees every step as a forward call
        (and, with ``find_unused_parameters``, tolerates the head idling on CE steps)."""

        def __init__(self, selector: nn.Module) -> None:
            super().__init__()
            self.selector = selector

        def forward(
            self,
            task: str,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            labels: torch.Tensor,
            frame_features: torch.Tensor | None = None,
            pixel_values: torch.Tensor | None = None,
            label_weights: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, torch.Tensor | None]:
            if task == "bce":
                out = self.selector(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    frame_features=frame_features,
                    pixel_values=pixel_values,
                    labels=labels,
                    label_weights=label_weights,
                )
                return out.loss, out.logits
            base = _base_model(self.selector)
            embeds = base.embed_inputs(input_ids, pixel_values, frame_features)
            # Positions count real tokens, as in the selector's forward (rows are left-padded).
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            out = base.language_model(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                labels=labels,
                use_cache=False,
            )
            return out.loss, None

    return SelectorObjective


def _base_model(selector: Any) -> Any:
    """The `FrameSelectorModel` inside a peft model (or the model itself)."""
    return selector.get_base_model() if hasattr(selector, "get_base_model") else selector


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    root = Path(output_dir) / "checkpoints"
    done = [p for p in root.glob("step-*") if (p / _STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def read_training_record(model: str | os.PathLike, revision: str | None = None) -> dict | None:
    """The `TRAINING_RECORD` of a selector directory or Hub repo, or None when it has none."""
    path = Path(model) / TRAINING_RECORD
    if is_local(model):
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    try:
        local = hf_hub_download(str(model), TRAINING_RECORD, revision=revision)
    except (EntryNotFoundError, LocalEntryNotFoundError):
        return None
    return json.loads(Path(local).read_text(encoding="utf-8"))


def public_ref(value: str | os.PathLike | None) -> dict[str, Any] | None:
    """How a record names a model or dataset: a Hub id as is; a local path by its base name
    only (records and cards are published: no local absolute paths)."""
    if value is None or str(value) == "":
        return None
    text = str(value)
    local = is_local(text) or os.path.isabs(text) or text.startswith((".", "~"))
    return {"id": Path(text).name if local else text, "local": local}


class SelectorTrainingRecipe:
    """One stage of selector training (see the module docstring).

    Args:
        config: the stage's `TrainConfig`.
        callbacks: `TrainerCallback` objects (progress display, interruption in tests).

    Example:
        >>> recipe = SelectorTrainingRecipe(config)
        >>> recipe.setup()
        >>> try:
        ...     result = recipe.train()
        ... finally:
        ...     recipe.cleanup()
    """

    def __init__(self, config: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> None:
        self.config = config
        self.callbacks = list(callbacks)
        self.output_dir = Path(config.output_dir)
        self.state = TrainerState()
        self.resumed_from: int | None = None
        self._last_eval: dict[str, Any] = {}
        self._metrics_file = None

    # --- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        """Load model, processor and data, freeze or wrap the trainable parts, build the
        optimiser and schedule, and resume from the latest checkpoint when there is one.

        Raises:
            ConfigError / ValueError: a model that is not a frame selector, n larger than it
                scores, captions requested but absent.
            TrainingDataError, fsmodel.schema.SchemaError: unusable label data.
        """
        import torch
        import transformers
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed
        from transformers import AutoModel, AutoProcessor

        import fsmodel  # noqa: F401  (registers the selector with the Auto classes as they load)
        from fsmodel.modeling_frame_selector import FrameSelectorModel

        config = self.config
        # Under torchrun without GPUs accelerate only goes multi-process (gloo) when told cpu.
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.accelerator = Accelerator(
            cpu=world > 1 and not torch.cuda.is_available(),
            mixed_precision=config.mixed_precision,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        set_seed(config.seed)
        model = AutoModel.from_pretrained(config.model, revision=config.model_revision)
        if not isinstance(model, FrameSelectorModel):
            raise ValueError(
                f"model {config.model!r} is a {type(model).__name__}, not a frame selector "
                "(model_type 'frame_selector'); create one with `framesel model init`"
            )
        processor = AutoProcessor.from_pretrained(config.model, revision=config.model_revision)
        self.processor = processor
        self._load_data(model)

        for param in model.parameters():
            param.requires_grad_(False)
        trainable = list(config.optim.trainable)
        if config.stage == 2:
            from fsmodel.training.lora import add_lora

            selector = add_lora(model, config.lora, trainable)
        else:
            selector = model
            for part in trainable:
                module = getattr(model, part)
                module.requires_grad_(True)
        if config.gradient_checkpointing:
            model.language_model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        self.selector = selector
        self.base = model
        self.frames = FrameSource(
            model,
            processor,
            cache=FeatureCache(config.cache.resolved_dir()) if config.uses_feature_cache else None,
            reader=config.data.reader,
            memory=config.data.memory_cache if not config.uses_feature_cache else 0,
        )
        # Features of a frozen tower equal its pixels' pass (tested); they skip the tower.
        self.use_features = "vision_model" not in trainable

        self.param_names = [n for n, p in selector.named_parameters() if p.requires_grad]
        params = [p for _, p in selector.named_parameters() if p.requires_grad]
        optim = config.optim
        optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
        self.state.total_steps = self._total_steps()
        self.scheduler = transformers.get_scheduler(
            SCHEDULERS[optim.scheduler],
            optimizer,
            num_warmup_steps=math.ceil(optim.warmup_ratio * self.state.total_steps),
            num_training_steps=self.state.total_steps,
        )
        objective = _objective_class()(selector)
        # The scheduler is stepped by hand once per optimiser step: accelerate would step a
        # prepared one once per process, but the step count here does not depend on the world.
        self.objective, self.optimizer = self.accelerator.prepare(objective, optimizer)
        self.params = params

        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.accelerator.is_main_process:
            (self.output_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        checkpoint = latest_checkpoint(self.output_dir) if config.checkpoint.resume else None
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        elif self.accelerator.is_main_process:
            (self.output_dir / METRICS_FILE).unlink(missing_ok=True)

    def _load_data(self, model) -> None:
        config = self.config
        data = config.data
        samples = load_samples(
            data.source,
            data.revision,
            data.video_root,
            data.limit,
            target=data.target,
            questions=data.questions,
        )
        n, capacity = samples[0].num_candidates, model.config.num_candidates
        if n > capacity:
            raise TrainingDataError(
                f"{data.source}: rows have n = {n} candidates but the selector scores at most "
                f"num_candidates = {capacity} ({config.model})"
            )
        if config.eval.k > n:
            raise TrainingDataError(f"eval.k = {config.eval.k} exceeds the rows' n = {n}")
        if data.eval_source is not None:
            held_out = load_samples(
                data.eval_source,
                data.eval_revision,
                data.video_root,
                target=data.target,
                questions=data.questions,
            )
            train = samples
        else:
            train, held_out = split_by_video(samples, data.eval_fraction, config.seed)
        train = weigh_hard_negatives(train, data.hard_negatives)
        self.train_samples: list[LabelSample] = train
        self.eval_samples: list[LabelSample] = held_out
        self.eval_split = "eval" if held_out else "train"
        self.caption_videos: list[CaptionVideo] = []
        wants = data.captions
        if config.stage == 1 and wants is not False:
            present = has_captions(data.source, data.revision)
            if wants and not present:
                raise TrainingDataError(
                    f"data.captions is true but {data.source} has no 'captions' config"
                )
            if present:
                self.caption_videos = load_captions(data.source, train, data.revision)

    # --- the schedule of batches ---------------------------------------------------------

    def _epoch_plan(self, epoch: int) -> list[tuple[str, list[Any]]]:
        """The micro-batches of one epoch, identical on every rank and every (re)start: BCE
        batches of shuffled samples, with CE batches (one random captioned frame per video)
        spread evenly between them."""
        config = self.config
        rng = np.random.default_rng([config.seed, epoch])
        size = config.optim.batch_size * self.accelerator.num_processes
        order = rng.permutation(len(self.train_samples))
        plan: list[tuple[float, int, str, list[Any]]] = []
        bce = [order[i : i + size].tolist() for i in range(0, len(order), size)]
        plan += [((i + 0.5) / len(bce), 0, "bce", rows) for i, rows in enumerate(bce)]
        if self.caption_videos:
            examples = [
                (v, int(rng.choice(self.caption_videos[v].captioned)))
                for v in rng.permutation(len(self.caption_videos)).tolist()
            ]
            ce = [examples[i : i + size] for i in range(0, len(examples), size)]
            plan += [((i + 0.5) / len(ce), 1, "ce", rows) for i, rows in enumerate(ce)]
        plan.sort(key=lambda item: (item[0], item[1]))
        return [(task, rows) for _, _, task, rows in plan]

    def _total_steps(self) -> int:
        accum = self.config.optim.grad_accum_steps
        return sum(
            math.ceil(len(self._epoch_plan(e)) / accum) for e in range(self.config.optim.epochs)
        )

    def _rows_of_rank(self, rows: list[Any]) -> list[Any]:
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        mine = rows[rank::world]
        # A short last batch may leave a rank empty; DDP needs every rank to step.
        return mine or rows[:1]

    def _batch(self, task: str, rows: list[Any]):
        rows = self._rows_of_rank(rows)
        if task == "bce":
            batch = collate_bce(
                [self.train_samples[i] for i in rows], self.frames, self.use_features
            )
        else:
            examples = [(self.caption_videos[v], p) for v, p in rows]
            batch = collate_ce(examples, self.frames, self.use_features)
        return batch

    # --- training ------------------------------------------------------------------------

    def train(self) -> TrainResult:
        """Run the remaining optimiser steps, evaluating and checkpointing on schedule, then
        save the trained selector.

        Returns:
            A `TrainResult`.
        """
        config = self.config
        accum = config.optim.grad_accum_steps
        for callback in self.callbacks:
            callback.on_train_begin(self.state)
        started = time.perf_counter()
        while self.state.epoch < config.optim.epochs:
            plan = self._epoch_plan(self.state.epoch)
            groups = [plan[i : i + accum] for i in range(0, len(plan), accum)]
            for group in groups[self.state.step_in_epoch :]:
                logs = self._optimizer_step(group)
                self.state.global_step += 1
                self.state.step_in_epoch += 1
                logs.update(
                    step=self.state.global_step,
                    epoch=round(self.state.epoch + self.state.step_in_epoch / len(groups), 4),
                    elapsed_s=round(time.perf_counter() - started, 3),
                )
                if self.state.global_step % config.log_every == 0:
                    self._log({"event": "train", **logs})
                for callback in self.callbacks:
                    callback.on_step(self.state, logs)
                every = config.eval.every_steps
                if every and self.state.global_step % every == 0:
                    self.evaluate()
                every = config.checkpoint.every_steps
                last = self.state.step_in_epoch == len(groups)
                if every and self.state.global_step % every == 0 and not last:
                    self.save_checkpoint()
            self.state.epoch += 1
            self.state.step_in_epoch = 0
            if not config.eval.every_steps:
                self.evaluate()
            if self.state.epoch < config.optim.epochs:
                self.save_checkpoint()
        if config.eval.every_steps and self.state.global_step % config.eval.every_steps:
            self.evaluate()
        result = self._save_final()
        for callback in self.callbacks:
            callback.on_train_end(self.state, result)
        return result

    def _optimizer_step(self, group: list[tuple[str, list[Any]]]) -> dict[str, Any]:
        import torch

        accelerator = self.accelerator
        config = self.config
        self.objective.train()
        losses: dict[str, list[float]] = {}
        picked: list[Any] = []
        for j, (task, rows) in enumerate(group):
            batch = self._batch(task, rows)
            inputs = {
                k: v.to(accelerator.device) for k, v in batch.inputs().items() if v is not None
            }
            weight = 1.0 if task == "bce" else config.optim.ce_weight
            sync = j == len(group) - 1
            # Gradients are all-reduced once per optimiser step, on its last micro-batch.
            context = contextlib.nullcontext() if sync else accelerator.no_sync(self.objective)
            with context, accelerator.autocast():
                loss, logits = self.objective(task, **inputs)
                accelerator.backward(loss * weight / len(group))
            losses.setdefault(task, []).append(float(loss.detach()))
            if logits is not None:
                picked.append((batch, torch.sigmoid(logits.detach().float()).cpu().numpy()))
        if config.optim.max_grad_norm > 0:
            accelerator.clip_grad_norm_(self.params, config.optim.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, Any] = {
            "lr": lr,
            "loss": round(float(np.mean([v for vs in losses.values() for v in vs])), 6),
        }
        for task, values in losses.items():
            logs[f"loss_{task}"] = round(float(np.mean(values)), 6)
        if picked:
            k = min(config.eval.k, picked[0][1].shape[1])
            results = [
                r
                for batch, scores in picked
                for r in score_samples(
                    [s.sample_id for s in batch.items],
                    scores,
                    batch.labels.numpy(),
                    k,
                    config.eval.threshold,
                )
            ]
            logs[f"recall@{k}"] = EvalReport(k=k, results=results).summary()[f"recall@{k}"]
        return logs

    def evaluate(self) -> dict[str, Any]:
        """Measure recall@k and coverage@k of nms/topk/uniform on the held-out samples (or the
        training samples when none are held out); logged as an ``eval`` line."""
        config = self.config
        samples = self.eval_samples or self.train_samples
        if config.eval.max_samples is not None:
            samples = samples[: config.eval.max_samples]
        summary: dict[str, Any] = {}
        if self.accelerator.is_main_process:
            model = self.accelerator.unwrap_model(self.objective).selector
            report = evaluate_selector(
                model,
                samples,
                self.frames,
                k=config.eval.k,
                threshold=config.eval.threshold,
                batch_size=config.eval.batch_size,
                use_features=self.use_features,
            )
            summary = {"split": self.eval_split, **report.summary()}
            self._log(
                {
                    "event": "eval",
                    "step": self.state.global_step,
                    "epoch": self.state.epoch,
                    **summary,
                }
            )
            for callback in self.callbacks:
                callback.on_eval(self.state, summary)
        self.accelerator.wait_for_everyone()
        self._last_eval = summary
        return summary

    def _log(self, record: dict[str, Any]) -> None:
        if not self.accelerator.is_main_process:
            return
        if self._metrics_file is None:
            self._metrics_file = open(self.output_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._metrics_file.write(json.dumps(record) + "\n")
        self._metrics_file.flush()

    # --- checkpoints ---------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Write a resumable checkpoint (trainable weights, optimiser, scheduler, every rank's
        RNG state, trainer state) for the current step; keep the newest ``checkpoint.keep``.

        The directory is renamed into place only once complete, so an interrupted save leaves
        the previous checkpoint as the latest.
        """
        import torch
        from safetensors.torch import save_file

        accelerator = self.accelerator
        root = self.output_dir / "checkpoints"
        final = root / f"step-{self.state.global_step:08d}"
        tmp = root / f".tmp-step-{self.state.global_step:08d}"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        torch.save(_rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
        if accelerator.is_main_process:
            selector = accelerator.unwrap_model(self.objective).selector
            named = dict(selector.named_parameters())
            save_file(
                {n: named[n].detach().cpu().contiguous() for n in self.param_names},
                tmp / _TRAINABLE_FILE,
            )
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
            (tmp / _STATE_FILE).write_text(json.dumps(asdict(self.state), indent=2))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            done = sorted(root.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
            for old in done[: -self.config.checkpoint.keep]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return final

    def _load_checkpoint(self, path: Path) -> None:
        import torch
        from safetensors.torch import load_file

        state = json.loads((path / _STATE_FILE).read_text())
        if state["total_steps"] != self.state.total_steps:
            raise ValueError(
                f"checkpoint {path} belongs to a run of {state['total_steps']} steps, this config "
                f"makes {self.state.total_steps}; use a new output_dir or checkpoint.resume=false"
            )
        selector = self.accelerator.unwrap_model(self.objective).selector
        named = dict(selector.named_parameters())
        weights = load_file(path / _TRAINABLE_FILE)
        if sorted(weights) != sorted(self.param_names):
            raise ValueError(
                f"checkpoint {path} holds other trainable parameters than this config trains "
                "(different stage, LoRA or optim.trainable?); use a new output_dir"
            )
        with torch.no_grad():
            for name, value in weights.items():
                named[name].copy_(value)
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
        rng_file = path / f"rng-{self.accelerator.process_index}.pt"
        if rng_file.is_file():
            _set_rng_state(torch.load(rng_file, weights_only=False))
        self.state = TrainerState(**state)
        self.resumed_from = self.state.global_step
        if self.accelerator.is_main_process:
            _truncate_metrics(self.output_dir / METRICS_FILE, self.state.global_step)

    # --- results -------------------------------------------------------------------------

    def _save_final(self) -> TrainResult:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        final_dir = self.output_dir / "final"
        adapter_dir = self.output_dir / "adapter" if self.config.stage == 2 else None
        if accelerator.is_main_process:
            selector = accelerator.unwrap_model(self.objective).selector
            record = self._training_record()
            if adapter_dir is not None:
                from fsmodel.training.lora import merge_adapter, save_adapter

                save_adapter(selector, adapter_dir)
                _write_json(adapter_dir / TRAINING_RECORD, record)
                model = merge_adapter(selector)
            else:
                model = selector
            model.save_pretrained(final_dir)
            self.processor.save_pretrained(final_dir)
            _write_json(final_dir / TRAINING_RECORD, record)
        accelerator.wait_for_everyone()
        return TrainResult(
            output_dir=self.output_dir,
            final_dir=final_dir,
            adapter_dir=adapter_dir,
            steps=self.state.global_step,
            metrics=self._last_eval,
            resumed_from=self.resumed_from,
        )

    def _training_record(self) -> dict[str, Any]:
        import fsmodel

        config = self.config
        previous = read_training_record(config.model, config.model_revision) or {}
        vision = getattr(self.base.config.vision_config, "_name_or_path", None)
        llm = getattr(self.base.config.text_config, "_name_or_path", None)
        optim = config.optim
        hyper: dict[str, Any] = {
            "lr": optim.lr,
            "epochs": optim.epochs,
            "scheduler": optim.scheduler,
            "warmup_ratio": optim.warmup_ratio,
            "weight_decay": optim.weight_decay,
            "batch_size": optim.batch_size * self.accelerator.num_processes,
            "grad_accum_steps": optim.grad_accum_steps,
            "max_grad_norm": optim.max_grad_norm,
            "mixed_precision": config.mixed_precision,
            "seed": config.seed,
        }
        if self.caption_videos:
            hyper["ce_weight"] = optim.ce_weight
        stage: dict[str, Any] = {
            "stage": config.stage,
            "started_from": public_ref(config.model),
            "trainable": list(optim.trainable) + (["lora"] if config.stage == 2 else []),
            "objectives": ["bce"] + (["caption_ce"] if self.caption_videos else []),
            "hyperparameters": hyper,
            "data": {
                "source": public_ref(config.data.source),
                "revision": config.data.revision,
                "target": config.data.target,
                "questions": config.data.questions,
                "rows": len(self.train_samples),
                "videos": len({s.video_id for s in self.train_samples}),
                "caption_videos": len(self.caption_videos),
                "num_candidates": self.train_samples[0].num_candidates,
            },
            "steps": self.state.global_step,
            "metrics": self._last_eval,
        }
        if config.stage == 2:
            lora = asdict(config.lora)
            stage["lora"] = lora
        if config.data.eval_source is not None:
            stage["data"]["eval_source"] = public_ref(config.data.eval_source)
            stage["data"]["eval_revision"] = config.data.eval_revision
        return {
            "framesel_version": fsmodel.__version__,
            "base_models": previous.get("base_models")
            or {"vision": public_ref(vision), "llm": public_ref(llm)},
            "stages": [*previous.get("stages", []), stage],
        }

    def cleanup(self) -> None:
        """Close the metrics file and release the accelerator's state."""
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None:
            accelerator.free_memory()


def train_selector(config: TrainConfig, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Run one training stage end to end (`SelectorTrainingRecipe` setup → train → cleanup).

    Example:
        >>> result = train_selector(TrainConfig.from_yaml("stage1.yaml"))
        >>> result.final_dir, result.metrics["recall@8"]
    """
    recipe = SelectorTrainingRecipe(config, callbacks)
    try:
        recipe.setup()
        return recipe.train()
    finally:
        recipe.cleanup()


def _rng_state() -> dict[str, Any]:
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_metrics(path: Path, step: int) -> None:
    # Lines written after the checkpoint belong to steps that will run again.
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by the interruption
            continue
        if record.get("step", 0) <= step:
            keep.append(line)
    path.write_text("".join(f"{line}\n" for line in keep), encoding="utf-8")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
