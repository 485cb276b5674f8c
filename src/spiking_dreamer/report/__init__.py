"""Reports of experiments: learning curves, the results table and rliable-style aggregates.

``spiking-dreamer report EXP_DIR [EXP_DIR ...]`` reads every run's ``eval.jsonl`` (finished or
not; unfinished and failed runs are listed in the notes) of sweep experiments, train run
directories or folders of them, and writes to ``EXP_DIR/report/`` (or ``--out``) the files
listed in :mod:`.render`.

The package is split by stage: :mod:`.load` finds and reads runs, :mod:`.stats` holds the
statistics (IQM, bootstrap intervals, probability of improvement; rliable, Agarwal et al.,
NeurIPS 2021, implemented without depending on the ``rliable`` package), :mod:`.analysis`
summarises arms and tasks as the frozen dataclasses of :mod:`.summary`, :mod:`.render` turns
them into figures, tables and text, and :mod:`.write` runs the stages and writes the files.
"""

from __future__ import annotations

from spiking_dreamer.report.analysis import ARM_ORDER as ARM_ORDER
from spiking_dreamer.report.analysis import DEFAULT_BUDGETS as DEFAULT_BUDGETS
from spiking_dreamer.report.analysis import DEFAULT_THRESHOLDS as DEFAULT_THRESHOLDS
from spiking_dreamer.report.analysis import NORMALIZATION as NORMALIZATION
from spiking_dreamer.report.analysis import aggregate as aggregate
from spiking_dreamer.report.analysis import analyse as analyse
from spiking_dreamer.report.analysis import analyse_arm as analyse_arm
from spiking_dreamer.report.analysis import analyse_task as analyse_task
from spiking_dreamer.report.analysis import env_family as env_family
from spiking_dreamer.report.analysis import parse_budgets as parse_budgets
from spiking_dreamer.report.analysis import parse_thresholds as parse_thresholds
from spiking_dreamer.report.load import Experiment as Experiment
from spiking_dreamer.report.load import ReportError as ReportError
from spiking_dreamer.report.load import RunData as RunData
from spiking_dreamer.report.load import load_experiment as load_experiment
from spiking_dreamer.report.load import load_inputs as load_inputs
from spiking_dreamer.report.load import read_evals as read_evals
from spiking_dreamer.report.render import ARM_COLOR as ARM_COLOR
from spiking_dreamer.report.render import ARM_LABEL as ARM_LABEL
from spiking_dreamer.report.render import fmt_return as fmt_return
from spiking_dreamer.report.render import fmt_steps as fmt_steps
from spiking_dreamer.report.render import fmt_threshold as fmt_threshold
from spiking_dreamer.report.render import markdown as markdown
from spiking_dreamer.report.render import plot_task as plot_task
from spiking_dreamer.report.render import results_rows as results_rows
from spiking_dreamer.report.stats import bootstrap_ci as bootstrap_ci
from spiking_dreamer.report.stats import iqm as iqm
from spiking_dreamer.report.stats import mean as mean
from spiking_dreamer.report.stats import probability_of_improvement as probability_of_improvement
from spiking_dreamer.report.stats import (
    probability_of_improvement_ci as probability_of_improvement_ci,
)
from spiking_dreamer.report.stats import sample_variance as sample_variance
from spiking_dreamer.report.stats import steps_to_threshold as steps_to_threshold
from spiking_dreamer.report.stats import stratified_bootstrap_ci as stratified_bootstrap_ci
from spiking_dreamer.report.summary import MIN_SEEDS_FOR_VARIANCE as MIN_SEEDS_FOR_VARIANCE
from spiking_dreamer.report.summary import NOT_MEANINGFUL as NOT_MEANINGFUL
from spiking_dreamer.report.summary import Aggregate as Aggregate
from spiking_dreamer.report.summary import ArmSummary as ArmSummary
from spiking_dreamer.report.summary import Report as Report
from spiking_dreamer.report.summary import TaskSummary as TaskSummary
from spiking_dreamer.report.write import write_report as write_report
