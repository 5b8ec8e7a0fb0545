"""Study runners: a sweep gives the same results on the local pool, on a Dask LocalCluster and in this
process; an unreachable cluster is one line, and the local pool only when a fallback was asked for."""

from __future__ import annotations

import socket

import pytest
from distributed import Client, LocalCluster

from scheduler.services.studies import VariantOutcome, run_variants, study_params
from scheduler.services.sweeps import (
    ClusterUnavailableError,
    DaskRunner,
    LocalPoolRunner,
    SerialRunner,
    runner_for,
)
from solver.whatif import DemandGrowth, PriceShock, RegionLost, SloChange, SpotCapChange, WhatIf
from tests.planning_problems import tiny_problem

VARIANTS = [
    WhatIf(name="base"),
    WhatIf(name="acme +50%", changes=(PriceShock(factor=1.5, providers="acme"),)),
    WhatIf(name="no iad", changes=(RegionLost(regions="acme/iad"),)),
    WhatIf(name="demand x3", changes=(DemandGrowth(factor=3.0),)),
    WhatIf(name="no spot", changes=(SpotCapChange(max_spot_share=0.0),)),
    WhatIf(name="SLO x0.5", changes=(SloChange(factor=0.5),)),  # no region in reach: infeasible
]
PARAMS = study_params(time_limit_s=5)


def _square(shared: int, item: int) -> int:
    return shared + item * item


def fingerprint(outcomes: list[VariantOutcome]) -> list[tuple[object, ...]]:
    return [
        (
            o.name,
            o.result.status,
            o.result.cost_micro_usd_per_hour,
            o.result.lower_bound_micro_usd_per_hour,
            o.result.plan,
        )
        for o in outcomes
    ]


def test_same_results_on_local_pool_dask_cluster_and_serial() -> None:
    problem = tiny_problem()
    serial = run_variants(problem, VARIANTS, PARAMS, SerialRunner(), progress=False)
    pool = run_variants(problem, VARIANTS, PARAMS, LocalPoolRunner(2), progress=False)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        runner = runner_for(client)
        assert isinstance(runner, DaskRunner)
        dask = run_variants(problem, VARIANTS, PARAMS, runner, progress=True)
    assert fingerprint(pool) == fingerprint(dask) == fingerprint(serial)
    assert [o.result.status.value for o in pool][-1] == "infeasible"
    assert all(o.result.plan is not None for o in pool[:-1])
    # Results come back in the variants' order, whatever order the workers finished in.
    assert [o.name for o in dask] == [v.name for v in VARIANTS]


def test_runners_map_in_order_with_the_shared_input() -> None:
    items = list(range(7))
    expected = [10 + i * i for i in items]
    assert SerialRunner().map(_square, 10, items, progress=False) == expected
    assert LocalPoolRunner(2).map(_square, 10, items, progress=True) == expected
    assert LocalPoolRunner(2).map(_square, 10, [], progress=False) == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_cluster_is_one_line_then_local_pool_only_on_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(ClusterUnavailableError) as info:
        runner_for(address, timeout_s=0.5)
    message = str(info.value)
    assert message.startswith(f"cannot reach the Dask scheduler at {address}: ")
    assert "\n" not in message
    runner = runner_for(address, timeout_s=0.5, fallback=True, workers=2)
    assert isinstance(runner, LocalPoolRunner) and runner.workers == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert (
        err[0].startswith(f"cannot reach the Dask scheduler at {address}")
        and "local pool (2 workers)" in err[0]
    )


def test_runner_choices() -> None:
    assert isinstance(runner_for(None), LocalPoolRunner)
    assert isinstance(runner_for("serial"), SerialRunner)
    assert isinstance(runner_for("local", workers=1), LocalPoolRunner)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        LocalPoolRunner(0)
