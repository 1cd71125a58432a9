"""fslabels.evaluation: does selection help? Downstream video-QA evaluation of frame-selection
strategies, apart from labelling (it may use labelling; labelling never imports it).

- `fslabels.evaluation.config`: `EvalConfig` (candidates, ks, strategies, scorers, downstream model).
- `fslabels.evaluation.prompts`: the QA prompts (lmms-eval's multiple-choice wording), gold answers,
  reading a reply's option letter.
- `fslabels.evaluation.answerer`: `Answerer`, the frozen downstream ``AutoModelForImageTextToText``
  (frames passed the way its family expects video; letter likelihood and generation).
- `fslabels.evaluation.strategies`: the selection strategies (scorer + rule) behind one interface.
- `fslabels.evaluation.store`: `EvalStore`, the label run store plus an eval results table.
- `fslabels.evaluation.run`: `run_eval` (resumable, cached per strategy, k, model and question).
- `fslabels.evaluation.report`: `build_report`, `render_table`, `plot_report`, `write_results`.
- `fslabels.evaluation.lmms_plugin`: framesel as an lmms-eval model.

Importing this package is cheap: torch and transformers load when a model does.
"""

from fslabels.evaluation.config import EvalConfig
from fslabels.evaluation.prompts import build_prompt, gold_answer, parse_choice
from fslabels.evaluation.run import EvalSummary, run_eval

__all__ = ["EvalConfig", "EvalSummary", "build_prompt", "gold_answer", "parse_choice", "run_eval"]
