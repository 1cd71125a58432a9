"""fslabels.qa: does selection help? Downstream video-QA evaluation of frame-selection strategies.

- `fslabels.qa.config`: `EvalConfig` (candidates, ks, strategies, scorers, downstream model).
- `fslabels.qa.prompts`: the QA prompts (lmms-eval's multiple-choice wording), gold answers,
  reading a reply's option letter.
- `fslabels.qa.answerer`: `Answerer`, the frozen downstream ``AutoModelForImageTextToText``
  (frames passed the way its family expects video; letter likelihood and generation).
- `fslabels.qa.store`: `EvalStore`, the label run store plus an eval results table.
- `fslabels.qa.run`: `run_eval` (resumable, cached per strategy, k, model and question).
- `fslabels.qa.report`: `build_report`, `render_table`, `plot_report`, `write_results`.

Strategies themselves live in `fslabels.strategies`. Importing this package is cheap: torch and
transformers load when a model does.
"""

from fslabels.qa.config import EvalConfig
from fslabels.qa.prompts import build_prompt, gold_answer, parse_choice
from fslabels.qa.run import EvalSummary, run_eval

__all__ = ["EvalConfig", "EvalSummary", "build_prompt", "gold_answer", "parse_choice", "run_eval"]
