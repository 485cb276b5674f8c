"""Multi-seed sweeps: every (config, arm, seed) run of an experiment as a Ray task.

One experiment directory holds everything::

    <exp>/manifest.json            command, commit, date, machine, versions, and every run's status
    <exp>/runs/<stem>__<arm>__s<seed>/   an ordinary run directory (config.yaml, eval.jsonl, ...)
    <exp>/logs/<run>.log           what the run printed (appended on every attempt)
    <exp>/status/<run>.json        written by a task while it runs (host, pid, start time)

Re-running the same command on the same ``--exp-dir`` is safe and is how an interrupted sweep is
continued: a finished run (``summary.json`` with all its steps) is skipped without starting a
task, a run with a training state (``checkpoints/state.pt``) continues exactly with
``Trainer.resume``, a failed run is tried again, and a run directory that crashed before its first
training-state checkpoint is moved aside to ``<run>.failed-<n>`` and started afresh. A run
directory made with another config (other than ``log.*``, ``train.threads``, ``train.compile`` and
``train.device``) is reported as failed rather than mixed into the experiment.

Without ``--address`` a local Ray instance is started (all CPUs, no dashboard); with it the sweep
joins an existing cluster (``ray start --head`` on one machine, ``ray start --address=...`` on the
others). Every node needs this package installed, and the experiment directory must be on a file
system that every node sees at the same path (the tasks write the run directories and the driver
reads them for progress and skipping).

With ``log.wandb=true`` (``--wandb``) each task sets ``WANDB_RUN_GROUP`` to the experiment name
and ``WANDB_JOB_TYPE`` to the arm, so W&B groups a sweep's runs by experiment.
"""

from spiking_dreamer.sweep.driver import STATUSES, Sweep, import_ray, run_sweep
from spiking_dreamer.sweep.plan import (
    ARMS,
    RunSpec,
    SweepError,
    parse_arms,
    parse_seeds,
    plan_runs,
    run_overrides,
)
from spiking_dreamer.sweep.runs import (
    check_stored_config,
    config_differences,
    latest_step,
    move_aside,
    read_json,
    run_dir_state,
    run_one,
)

__all__ = [
    "ARMS",
    "STATUSES",
    "RunSpec",
    "Sweep",
    "SweepError",
    "check_stored_config",
    "config_differences",
    "import_ray",
    "latest_step",
    "move_aside",
    "parse_arms",
    "parse_seeds",
    "plan_runs",
    "read_json",
    "run_dir_state",
    "run_one",
    "run_overrides",
    "run_sweep",
]
