"""The sweep engine equals the naive loop (hypothesis over random specs and layer sets)."""

from __future__ import annotations

import pytest
from conftest import frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_knockout_parity import selections, specs

from vlens import knockout as ko
from vlens.interventions.sweep import SweepConfig, plan, run_naive, run_sweep

ATOL = 1e-4


@pytest.fixture(scope="module")
def sample(model):
    return model.to_inputs(frames(3, seed=5), "how many objects are moving to the left", n_frames=3)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(specs, selections()), min_size=1, max_size=6), st.sampled_from([None, 400_000, 10**9])
)  # 400 kB: one configuration fits, not all
def test_engine_equals_naive_loop(model, sample, pairs, budget):
    configs = [SweepConfig(f"c{i}", spec, sel) for i, (spec, sel) in enumerate(pairs)]
    naive = run_naive(model, sample, configs)
    fast = run_sweep(model, sample, configs, max_memory=budget)
    assert set(naive) == set(fast)
    for name in naive:
        assert (naive[name] - fast[name]).abs().max().item() <= ATOL, name
        assert naive[name].argmax() == fast[name].argmax()


def test_full_study_plan_costs_a_fraction_of_naive(model, sample):
    L = model.cfg.n_layers
    configs = [SweepConfig(f"g1/{i}", ko.LV(), ko.from_layer(i)) for i in range(L)]
    configs += [
        SweepConfig(f"w/{n}/{x}", ko.from_name(n), ko.window(x, 2)) for n in ("lv", "vt", "vs") for x in range(1, L)
    ]
    p = plan(configs, sample.layout, L)
    # LV-K configurations only recompute the question rows
    # configurations starting at the last layer are all LV-K: only the question rows are recomputed
    assert (L - 1, int(sample.layout.positions("text")[0])) in p.groups
    assert p.relative_cost() < 0.6


def test_memory_budget_bounds_the_batches(model, sample):
    sels = [ko.from_layer(1), ko.layers([1, 2]), ko.layers([1, 3]), ko.window(2, 2), ko.layers([1])]
    configs = [SweepConfig(f"vt{i}", ko.VT(), sel) for i, sel in enumerate(sels)]  # one (start, row) group
    roomy, tight = {}, {}
    run_sweep(model, sample, configs, report=roomy)
    assert max(roomy["batches"]) > 1
    budget = roomy["cached_bytes"] + (roomy["peak_estimate"] - roomy["cached_bytes"]) // 3
    run_sweep(model, sample, configs, max_memory=budget, report=tight)
    assert tight["peak_estimate"] <= budget
    assert max(tight["batches"]) < max(roomy["batches"])
    assert sum(tight["batches"]) == len(configs)


def test_budget_too_small_is_a_clear_error(model, sample):
    with pytest.raises(MemoryError, match="max-memory"):
        run_sweep(model, sample, [SweepConfig("x", ko.VT(), ko.all_layers())], max_memory=10)


def test_engine_takes_one_sample(model):
    batch = model.to_inputs([frames(2), frames(2, seed=1)], ["what color", "what shape"], n_frames=2)
    with pytest.raises(ValueError, match="one sample"):
        run_sweep(model, batch, [SweepConfig("x", ko.LV(), ko.all_layers())])
