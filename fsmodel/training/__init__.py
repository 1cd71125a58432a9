"""Training the frame selector: configs, data, the two-stage recipe, LoRA, evaluation.

Heavy dependencies (accelerate, peft, datasets) load when a function needs them, so importing
this package is cheap; the ``train`` extra installs them (``pip install 'framesel[train]'``).

Example:
    >>> from fsmodel.training import TrainConfig, train_selector
    >>> config = TrainConfig.from_yaml("stage1.yaml", overrides=["optim.epochs=1"])
    >>> result = train_selector(config)
    >>> result.final_dir  # loads with AutoModel.from_pretrained
"""

from __future__ import annotations

from fsmodel.training.config import (
    CacheConfig,
    CheckpointConfig,
    ConfigError,
    DataConfig,
    HeldOutConfig,
    LoraSettings,
    OptimConfig,
    TrainConfig,
)
from fsmodel.training.data import (
    CandidateMismatchError,
    FeatureCache,
    FrameSource,
    LabelSample,
    TrainingDataError,
    load_samples,
)
from fsmodel.training.evaluate import EvalReport, evaluate_selector, plot_examples
from fsmodel.training.recipe import (
    SelectorTrainingRecipe,
    TrainerCallback,
    TrainResult,
    train_selector,
)

__all__ = [
    "CacheConfig",
    "CandidateMismatchError",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "EvalReport",
    "FeatureCache",
    "FrameSource",
    "HeldOutConfig",
    "LabelSample",
    "LoraSettings",
    "OptimConfig",
    "SelectorTrainingRecipe",
    "TrainConfig",
    "TrainResult",
    "TrainerCallback",
    "TrainingDataError",
    "evaluate_selector",
    "load_samples",
    "plot_examples",
    "train_selector",
]
