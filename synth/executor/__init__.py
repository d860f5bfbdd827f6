"""Executors: the one place that plans parts, decides what to skip or redo, writes parts and keeps the manifest."""

from synth.executor.base import (
    Decision,
    Executor,
    PartPlan,
    PartResult,
    PartWork,
    StageSummary,
    console,
    decide,
    dry_run,
    execute_part,
)
from synth.executor.choice import ExecutorSettings, executor_for, using_executor
from synth.executor.local import LocalExecutor
from synth.executor.lock import StageBusy, stage_lock

__all__ = [
    "Decision",
    "Executor",
    "ExecutorSettings",
    "LocalExecutor",
    "PartPlan",
    "PartResult",
    "PartWork",
    "StageBusy",
    "StageSummary",
    "console",
    "decide",
    "dry_run",
    "execute_part",
    "executor_for",
    "stage_lock",
    "using_executor",
]
