"""The classic small LSTM tasks people asked about because their model would not learn.

Each task has a seeded data generator (the exact spec plus variants), the
configuration that works, and the naive configuration people tried; a naive
run ends with an explanation built from what it measured.  Run them from the
command line (``pylstm tasks`` lists them)::

    pylstm run parity --seed 3 --plot parity.png
    pylstm run copy-first --naive
    pylstm run all

or from Python::

    from pylstm import tasks
    result = tasks.run("parity", seed=0)          # a TaskResult
    print(result.line())
    print(tasks.summary_table([result]))

Modules: ``binary_or`` (OR and binary addition), ``alternating``, ``parity``,
``copy_first``, ``char_model``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import alternating, binary_or, char_model, copy_first, parity
from ._runner import Measurement, Monitor, TaskResult, TimeLimit, summary_table

__all__ = ["Task", "TASKS", "get", "names", "run", "run_all", "TaskResult", "summary_table", "Monitor",
           "Measurement", "TimeLimit", "binary_or", "alternating", "parity", "copy_first", "char_model"]


@dataclass(frozen=True)
class Task:
    """A registry entry: a task (or variant) with its runner and fixed arguments."""

    name: str
    summary: str
    metric: str
    target: str
    runner: Callable[..., TaskResult]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def run(self, seed: int = 0, *, naive: bool = False, quick: bool = True, verbose: int = 0,
            **options: Any) -> TaskResult:
        """Train this task's working (or ``naive``) configuration once; see the module's ``run``."""
        return self.runner(seed, naive=naive, quick=quick, verbose=verbose, **{**self.kwargs, **options})


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("or", "a OR b, bit by bit, of two random 5-bit strings (100000 train, 30000 test)",
         "per-bit test accuracy", "100% within 1 epoch", binary_or.run_or),
    Task("addition", "a + b of two 8-bit numbers, least significant bit first; also scored at 16 bits",
         "whole-sum accuracy n=8 (n=16)", "100% (>=99%)", binary_or.run_addition),
    Task("alternating", "from S, generate 0 1 0 1 ... (30 symbols) then S; greedy, samples fed back",
         "generation right", "31/31", alternating.run, {"length": 30}),
    Task("alternating-100", "the long variant: 100 alternating symbols then S",
         "generation right", "101/101", alternating.run, {"length": 100}),
    Task("parity", "parity of 7 random bits (per-step running-parity targets)",
         "last-step test accuracy", "100%", parity.run, {"steps": 7}),
    Task("parity-20", "parity of 20 random bits", "last-step test accuracy", ">=99%", parity.run, {"steps": 20}),
    Task("parity-50", "parity of 50 random bits", "last-step test accuracy", ">=99%", parity.run, {"steps": 50}),
    Task("copy-first", "output the first of [b, r1, r2] (b in {0,1}, r digits 0-9), 200 samples",
         "test accuracy", "100%", copy_first.run, {"steps": 3}),
    Task("copy-first-50", "output the first of 50 inputs (mixed-length training)", "test accuracy", "100%",
         copy_first.run, {"steps": 50}),
    Task("copy-first-100", "output the first of 100 inputs (mixed-length training)", "test accuracy", "100%",
         copy_first.run, {"steps": 100}),
    Task("char", "next-character model (quick: a corpus made in code; full: the stdlib's source or --text)",
         "held-out nats/char", f"<{char_model.QUICK_TARGET:g} quick, <{char_model.FULL_TARGET:g} full",
         char_model.run),
]}


def names() -> list[str]:
    """Task names, in the order of ``pylstm tasks``."""
    return list(TASKS)


def get(name: str) -> Task:
    """The task called ``name`` (ValueError listing the known names otherwise)."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def run(name: str, seed: int = 0, **kwargs: Any) -> TaskResult:
    """``get(name).run(seed, **kwargs)``."""
    return get(name).run(seed, **kwargs)


def run_all(seed: int = 0, *, naive: bool = False, quick: bool = True, verbose: int = 0,
            on_result: Callable[[TaskResult], Any] | None = None) -> list[TaskResult]:
    """Every task once (quick form by default); ``on_result`` sees each result as it arrives."""
    results = []
    for task in TASKS.values():
        res = task.run(seed, naive=naive, quick=quick, verbose=verbose)
        results.append(res)
        if on_result is not None:
            on_result(res)
    return results
