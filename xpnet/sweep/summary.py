"""A sweep's summary, read from its study: every trial ranked by the metric (finished ones first, best
first; then pruned, running, waiting and failed ones) with its settings, value, state, seconds and run
folder, as ``summary.csv`` and ``summary.md``; ``best.json`` naming the best trial's run folder and model
(paths relative to the sweep folder, so they hold wherever the folder is mounted); where the sweep
refits (``refit``), the refit's test accuracy and model beside the best trial in ``summary.md`` and
``best.json``; and, with matplotlib, pictures of the search: ``history.png`` (the metric trial by trial)
and ``importance.png`` (how much each parameter mattered). Every file is written atomically.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from xpnet.errors import XpnetError, one_line
from xpnet.io import runs
from xpnet.io.atomic import atomic_write
from xpnet.report import plots
from xpnet.sweep import budget, engine, folder, refit
from xpnet.sweep.spec import Sweep
from xpnet.sweep.trial import ERROR, RUN_DIR

SUMMARY_CSV = "summary.csv"
SUMMARY_MARKDOWN = "summary.md"
BEST_FILE = "best.json"
HISTORY_PLOT = "history.png"
IMPORTANCE_PLOT = "importance.png"
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed"}
DPI = 120


def rows(trials, spec: Sweep) -> list[dict]:
    """One row per trial (surplus ones left out), ranked: see the module's text."""
    metric = spec.settings["metric"]
    sign = -1 if spec.settings["goal"] == "maximize" else 1
    order = list(STATES)
    run_again_as = {number: trial.number for trial in trials for number in trial.system_attrs.get("retry_history", [])}
    shown = [trial for trial in trials if not budget.is_surplus(trial)]
    shown.sort(
        key=lambda trial: (
            order.index(trial.state.name),
            math.inf if trial.value is None else sign * trial.value,
            trial.number,
        )
    )
    found = []
    for rank, trial in enumerate(shown, start=1):
        row = {
            "rank": rank,
            "trial": trial.number,
            "state": STATES[trial.state.name],
            metric: trial.value,
            "seconds": _seconds(trial),
            "run_dir": trial.user_attrs.get(RUN_DIR, ""),
        }
        row.update(
            {parameter.name: parameter.value_of(trial.params.get(parameter.name)) for parameter in spec.parameters}
        )
        row["note"] = _note(trial, run_again_as)
        found.append(row)
    return found


def _seconds(trial) -> float | None:
    if trial.datetime_start is None:
        return None
    end = trial.datetime_complete or datetime.datetime.now()
    return (end - trial.datetime_start).total_seconds()


def _note(trial, run_again_as: dict[int, int]) -> str:
    notes = []
    if budget.is_retry(trial):
        notes.append(f"run again for trial {trial.system_attrs['failed_trial']}")
    if trial.state.name == "PRUNED" and trial.last_step is not None:
        notes.append(f"pruned after epoch {trial.last_step}")
    if ERROR in trial.user_attrs:
        notes.append(trial.user_attrs[ERROR])
    if trial.number in run_again_as:
        notes.append(f"stopped; run again as trial {run_again_as[trial.number]}")
    return "; ".join(notes)


def write(study, spec: Sweep, sweep_dir: Path, *, pictures: bool) -> Result:
    """Write the tables and ``best.json`` (and the pictures, if asked); return the summary, with a note
    when the pictures could not be drawn."""
    found = rows(study.get_trials(deepcopy=False), spec)
    best = best_row(found)
    refitted = refit.record(spec, sweep_dir, best)
    with atomic_write(sweep_dir / SUMMARY_CSV, "w") as handle:
        handle.write(csv_text(found))
    with atomic_write(sweep_dir / SUMMARY_MARKDOWN, "w") as handle:
        handle.write(markdown(found, spec, refitted))
    if best is not None:
        runs.write_json(sweep_dir / BEST_FILE, best_record(best, spec, refitted))
    note = draw(study, spec, sweep_dir) if pictures else None
    return Result(sweep_dir, spec, found, refitted, note)


def csv_text(found: list[dict]) -> str:
    text = io.StringIO()
    if found:
        writer = csv.DictWriter(text, fieldnames=list(found[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(found)
    return text.getvalue()


def markdown(found: list[dict], spec: Sweep, refitted: dict | None = None) -> str:
    """The table as Markdown, numbers to four significant digits and seconds to tenths, and the refit
    (``refit.record``) below it."""
    title = (
        f"Sweep {spec.settings['name']}: {spec.settings['method']} search, "
        f"{spec.settings['goal']} {spec.settings['metric']}\n\n"
    )
    if not found:
        return title + "No trials yet.\n"
    columns = list(found[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(key, row[key]) for key in columns) + " |" for row in found]
    if refitted is not None:
        lines += ["", f"Refit: {_refit_text(refitted)}; model: {refitted['model']}"]
    return title + "\n".join(lines) + "\n"


def _refit_text(refitted: dict) -> str:
    """``trial 4 trained again on the whole training set (no validation split, 20 epochs): test accuracy 98.85%``."""
    return (
        f"trial {refitted['trial']} trained again on the whole training set (no validation split, "
        f"{refitted['epochs']} epochs): test accuracy {refitted['test_accuracy']:.2%}"
    )


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key == "seconds":
        return f"{value:.1f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def best_row(found: list[dict]) -> dict | None:
    return found[0] if found and found[0]["state"] == "complete" else None


def best_record(best: dict, spec: Sweep, refitted: dict | None = None) -> dict:
    """``best.json``: the best trial, its value and settings, and its run folder and model; and its
    refit (``refit.record``) where there is one."""
    metric = spec.settings["metric"]
    run_dir = best["run_dir"]
    record = {
        "trial": best["trial"],
        "metric": metric,
        "value": best[metric],
        "parameters": {parameter.name: best[parameter.name] for parameter in spec.parameters},
        "run_dir": run_dir,
        "model": str(Path(run_dir) / runs.MODEL_FILE),
    }
    return record if refitted is None else {**record, "refit": refitted}


def best_line(found: list[dict], spec: Sweep, sweep_dir: Path, refitted: dict | None = None) -> str:
    """One line naming the best trial and its model file (and its refit's), or saying there is none yet."""
    best = best_row(found)
    if best is None:
        return "no trial has finished yet"
    metric = spec.settings["metric"]
    model = Path(sweep_dir) / best["run_dir"] / runs.MODEL_FILE
    line = f"best: trial {best['trial']}, {metric} {best[metric]:.4g}; model: {model}"
    if refitted is not None:
        line += f"; refit: {_refit_text(refitted)}, model: {Path(sweep_dir) / refitted['model']}"
    return line


def draw(study, spec: Sweep, sweep_dir: Path) -> str | None:
    """Draw ``history.png`` and, with two finished trials or more, ``importance.png``; a note instead
    where matplotlib is missing or a picture cannot be drawn."""
    if not plots.available():
        return f"{HISTORY_PLOT} and {IMPORTANCE_PLOT} skipped: {plots.INSTALL_HINT}"
    library = engine.optuna()
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as optuna_plots

    metric = spec.settings["metric"]
    complete = study.get_trials(deepcopy=False, states=(library.trial.TrialState.COMPLETE,))
    drawings = [(HISTORY_PLOT, lambda: optuna_plots.plot_optimization_history(study, target_name=metric))]
    if len(complete) >= 2:
        evaluator = library.importance.PedAnovaImportanceEvaluator()
        drawings.append(
            (
                IMPORTANCE_PLOT,
                lambda: optuna_plots.plot_param_importances(study, evaluator=evaluator, target_name=metric),
            )
        )
    skipped = []
    for name, drawing in drawings:
        # Optuna marks its matplotlib plots experimental, and sets its style for the whole process: both
        # are kept to the drawing, so a notebook's own figures are left as they were.
        with warnings.catch_warnings(), pyplot.rc_context():
            warnings.simplefilter("ignore")
            try:
                axes = drawing()
            except (ValueError, RuntimeError) as error:
                skipped.append(f"{name} ({one_line(error)})")
                continue
        figure = axes.figure
        try:
            with atomic_write(sweep_dir / name) as handle:
                figure.savefig(handle, format="png", dpi=DPI, bbox_inches="tight")
        finally:
            pyplot.close(figure)
    return f"not drawn: {'; '.join(skipped)}" if skipped else None


@dataclass(frozen=True)
class Result:
    """A sweep's summary, as ``run_sweep`` and ``read_summary`` return it.

    Attributes:
        sweep_dir: The sweep folder.
        sweep: The checked sweep file.
        rows: One dict per trial, best first: rank, trial, state, the metric, seconds, ``run_dir`` (relative
            to ``sweep_dir``), its settings, a note.
        refit: The best trial's finished refit (test accuracy and loss, epochs, ``run_dir``, ``model``), or
            None without one.
        note: Why the pictures were not drawn, or None.
    """

    sweep_dir: Path
    sweep: Sweep
    rows: list[dict]
    refit: dict | None = None
    note: str | None = None

    def markdown(self) -> str:
        """The ranked table as Markdown, as ``summary.md`` holds it."""
        return markdown(self.rows, self.sweep, self.refit)

    def best_line(self) -> str:
        """One line naming the best trial, its metric and its model, as the command prints it."""
        return best_line(self.rows, self.sweep, self.sweep_dir, self.refit)


def read_summary(sweep_dir) -> Result:
    """The summary of a sweep, read back from its study (nothing is written).

    Args:
        sweep_dir: A sweep folder that ``xpnet sweep`` or ``run_sweep`` wrote.

    Returns:
        The same ``Result`` the sweep returned.

    Raises:
        XpnetError: The folder holds no sweep, or its study is not in the storage yet.
    """
    sweep_dir = Path(sweep_dir)
    spec = folder.read_spec(sweep_dir)
    try:
        study = engine.optuna().load_study(study_name=spec.settings["name"], storage=engine.storage(spec, sweep_dir))
    except KeyError:
        raise XpnetError(f"the sweep in {sweep_dir} has no study in its storage yet: run it first") from None
    found = rows(study.get_trials(deepcopy=False), spec)
    return Result(sweep_dir, spec, found, refit.record(spec, sweep_dir, best_row(found)))
