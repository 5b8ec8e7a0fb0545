"""Runners for studies: many independent solves on a local process pool or a Dask distributed cluster.

A runner maps a function over items with one shared input (the base problem), which is sent to each
worker once: ``runner.map(function, shared, items)`` returns ``[function(shared, item) for item in
items]`` in the items' order, with a progress bar. ``function`` must be a module-level function (it is
pickled by reference). Which runner computes a result does not change it: studies solve in the
solver's deterministic mode with a fixed seed.

- ``LocalPoolRunner(workers)``: a process pool on this machine (the default). Workers are forked, as the
  solver's own workers are, so a script needs no ``if __name__ == "__main__"`` guard; every task is
  submitted before the progress bar's thread starts. ``context="spawn"`` gives fresh interpreters.
- ``DaskRunner``: a ``distributed.Client``, given or connected to by address (``tcp://host:8786``).
- ``SerialRunner``: in this process, one item after the other (small studies, debugging).

``runner_for(cluster, fallback=...)`` picks one: an address that cannot be reached is one line
(``ClusterUnavailableError``), or, when the caller asked for a fallback, that line on stderr and the
local pool.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from distributed import Client, as_completed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

DEFAULT_CONNECT_TIMEOUT_S = 5.0
POOL_CONTEXT = "fork"


class ClusterUnavailableError(RuntimeError):
    """The Dask scheduler cannot be reached; the message is one line."""


class Runner(Protocol):
    name: str

    @property
    def workers(self) -> int: ...

    def map(
        self,
        function: Callable[[S, T], R],
        shared: S,
        items: Sequence[T],
        *,
        label: str = "solves",
        progress: bool = True,
    ) -> list[R]: ...

    def close(self) -> None: ...


@contextmanager
def _progress(label: str, total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    if not enabled or total == 0:
        yield lambda: None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


class SerialRunner:
    """Every item in this process, in order."""

    name = "serial"
    workers = 1

    def map(
        self,
        function: Callable[[S, T], R],
        shared: S,
        items: Sequence[T],
        *,
        label: str = "solves",
        progress: bool = True,
    ) -> list[R]:
        out = []
        with _progress(label, len(items), progress) as advance:
            for item in items:
                out.append(function(shared, item))
                advance()
        return out

    def close(self) -> None:
        return None


# The shared input and function of a pool worker, set once per process by the pool's initializer.
_WORKER_STATE: dict[str, Any] = {}


def _initialise_worker(function: Callable[[Any, Any], Any], shared: Any) -> None:
    _WORKER_STATE["function"] = function
    _WORKER_STATE["shared"] = shared


def _call_in_worker(item: Any) -> Any:
    return _WORKER_STATE["function"](_WORKER_STATE["shared"], item)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class LocalPoolRunner:
    """A pool of ``workers`` processes on this machine, started for each map and closed after it."""

    name = "local pool"

    def __init__(self, workers: int | None = None, *, context: str = POOL_CONTEXT) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers or default_workers()
        self.context = context

    def map(
        self,
        function: Callable[[S, T], R],
        shared: S,
        items: Sequence[T],
        *,
        label: str = "solves",
        progress: bool = True,
    ) -> list[R]:
        if not items:
            return []
        results: list[Any] = [None] * len(items)
        with ProcessPoolExecutor(
            max_workers=min(self.workers, len(items)),
            mp_context=multiprocessing.get_context(self.context),
            initializer=_initialise_worker,
            initargs=(function, shared),
        ) as pool:
            futures: dict[Future[Any], int] = {
                pool.submit(_call_in_worker, item): i for i, item in enumerate(items)
            }
            with _progress(label, len(items), progress) as advance:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[futures[future]] = future.result()
                        advance()
        return results

    def close(self) -> None:
        return None


def _call_with_shared(item: Any, function: Callable[[Any, Any], Any], shared: Any) -> Any:
    return function(shared, item)


class DaskRunner:
    """Items as tasks of a Dask distributed cluster; the shared input is scattered to every worker once."""

    name = "dask"

    def __init__(self, client: Client, *, owned: bool = False) -> None:
        self.client = client
        self._owned = owned

    @classmethod
    def connect(cls, address: str, *, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> DaskRunner:
        """A runner on the scheduler at ``address``; ClusterUnavailableError (one line) if unreachable."""
        try:
            client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClusterUnavailableError(f"cannot reach the Dask scheduler at {address}: {reason}") from None
        return cls(client, owned=True)

    @property
    def workers(self) -> int:
        info = self.client.scheduler_info()
        return sum(int(worker.get("nthreads", 1)) for worker in info.get("workers", {}).values()) or 1

    def map(
        self,
        function: Callable[[S, T], R],
        shared: S,
        items: Sequence[T],
        *,
        label: str = "solves",
        progress: bool = True,
    ) -> list[R]:
        if not items:
            return []
        shared_future = self.client.scatter(shared, broadcast=True, hash=False)
        futures = self.client.map(
            _call_with_shared, list(items), function=function, shared=shared_future, pure=False
        )
        try:
            with _progress(label, len(items), progress) as advance:
                for _ in as_completed(futures):
                    advance()
            results: list[R] = self.client.gather(futures)
        finally:
            self.client.cancel([*futures, shared_future])
        return results

    def close(self) -> None:
        if self._owned:
            self.client.close()


def runner_for(
    cluster: str | Client | Runner | None = None,
    *,
    workers: int | None = None,
    fallback: bool = False,
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> Runner:
    """The runner for ``cluster``: None (a local pool of ``workers``), ``"serial"``, a Dask scheduler
    address, a ``distributed.Client`` or a runner. An unreachable address raises ClusterUnavailableError,
    or with ``fallback`` prints that line to stderr and returns the local pool."""
    if cluster is None:
        return LocalPoolRunner(workers)
    if isinstance(cluster, str):
        if cluster == "serial":
            return SerialRunner()
        if cluster == "local":
            return LocalPoolRunner(workers)
        try:
            return DaskRunner.connect(cluster, timeout_s=timeout_s)
        except ClusterUnavailableError as exc:
            if not fallback:
                raise
            pool = LocalPoolRunner(workers)
            print(f"{exc}; running on the local pool ({pool.workers} workers)", file=sys.stderr)
            return pool
    if isinstance(cluster, LocalPoolRunner | SerialRunner | DaskRunner):
        return cluster
    if isinstance(cluster, Client):
        return DaskRunner(cluster)
    return cluster  # another object with the Runner protocol
