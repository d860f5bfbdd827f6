"""Where a heavy step of a stage's `prepare` runs (mining's index build): in this process, unless the executor places
it on a node with the memory the step needs (the Ray executor does)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

Placer = Callable[[Callable[..., Any], tuple[Any, ...], int, bool], Any]


def _here(fn: Callable[..., Any], args: tuple[Any, ...], memory: int, gpu: bool) -> Any:
    return fn(*args)


_placer: Placer = _here


def run_placed(fn: Callable[..., Any], *args: Any, memory: int, gpu: bool = False) -> Any:
    """`fn(*args)`, a step that holds about `memory` bytes, where the executor runs such steps; `gpu`: it uses a GPU
    when its process sees one (an executor that hands out GPUs gives it one). `fn` and `args` may travel to another
    node: they name files on the shared run directory, never hold large data."""
    return _placer(fn, args, memory, gpu)


@contextlib.contextmanager
def placing(placer: Placer) -> Iterator[None]:
    """Run the steps started inside with `placer`."""
    global _placer
    previous, _placer = _placer, placer
    try:
        yield
    finally:
        _placer = previous
