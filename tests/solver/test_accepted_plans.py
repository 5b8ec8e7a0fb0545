"""What the solve takes from the large-neighbourhood search's accepted plans (solver/solve.py
``newest_passing``), and a neighbourhood whose answer breaks a cut its MIP already had
(solver/search.py ``reoptimise``)."""

from __future__ import annotations

import math

import pytest

import solver.search as search_module
from solver.search import ensure_initial_cuts, reoptimise
from solver.solve import newest_passing
from tests.solver.test_focus import _index, _search


def test_the_newest_plan_is_taken_with_one_check_when_it_passes() -> None:
    checked: list[int] = []
    assert newest_passing(5, lambda i: checked.append(i) is None) == (4, 1)
    assert checked == [4]
    assert newest_passing(0, lambda i: True) == (None, 0)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 64, 242, 400])
def test_a_fault_inherited_from_plan_k_on_is_bisected_to_plan_k_minus_1(count: int) -> None:
    for first_bad in range(count):  # plans first_bad.. fail, as when one step broke a rule
        checked: list[int] = []

        def passes(i: int, first_bad: int = first_bad, checked: list[int] = checked) -> bool:
            checked.append(i)
            return i < first_bad

        chosen, checks = newest_passing(count, passes)
        assert chosen == (first_bad - 1 if first_bad > 0 else None)
        assert checks == len(checked)
        assert checks <= 2 + math.ceil(math.log2(count))  # 242 plans: 10 checks, not 242


def test_a_neighbourhood_breaking_a_cut_its_mip_already_had_gives_no_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    index, _ = _index()
    search = _search(index, focus_models=0)
    ensure_initial_cuts(search)
    model, known = next((m, cuts) for m, cuts in search.cuts.items() if cuts)
    start = search_module.greedy_fill(search, {}, sorted(index.demand))
    assert start is not None
    assert reoptimise(search, [model], start, time_limit_s=5, hint=start) is not None
    # The flow check finds the model short of a cut the MIP had (it kept it only within its tolerance).
    cut = next(iter(known))
    monkeypatch.setattr(search_module, "violated_cuts", lambda index, m, caps: [cut] if m == model else [])
    assert reoptimise(search, [model], start, time_limit_s=5, hint=start) is None
    assert search.stats["lns_within_tolerance"] == 1
