"""Bad arguments thrown at the public entry points: each is a clear error of vlens's own (a
ValueError subclass whose message names the argument), raised before any forward, never a bare
KeyError / IndexError / TypeError from inside and never a result."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlens import knockout as ko
from vlens.interventions.attribution import attribute_knockouts
from vlens.interventions.lens import attention_to_frames, logit_lens
from vlens.interventions.patching import logit_diff, patch_sweep

BAD_INDEX = st.one_of(
    st.integers(-5, -1),
    st.integers(4, 10**6),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.lists(st.integers(0, 3), max_size=2),
)
BAD_LETTERS = st.one_of(
    st.lists(st.integers(-3, -1), min_size=2, max_size=4),
    st.lists(st.integers(10**7, 10**8), min_size=2, max_size=4),
    st.lists(st.integers(0, 20), max_size=1),
    st.text(max_size=4),
    st.just(3.5),
)
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def refused(call, *names: str) -> None:
    """`call()` raises vlens's own ValueError naming one of `names`."""
    with pytest.raises(ValueError) as info:
        call()
    err = info.value
    assert type(err).__module__.startswith("vlens"), f"{type(err).__name__} from {type(err).__module__}: {err}"
    assert any(n in str(err) for n in names), f"the message does not name {names}: {err}"


@pytest.fixture(scope="module")
def setup(model):
    inputs = model.to_inputs(frames(2), "what color is the object", n_frames=2)
    letters = [model.tokenizer.convert_tokens_to_ids(x) for x in "ABCD"]
    return model, inputs, letters


@FUZZ
@given(answer=BAD_INDEX)
def test_answers_out_of_range_or_of_the_wrong_type(setup, answer):
    model, inputs, letters = setup
    logits = torch.randn(1, model.cfg.d_vocab)
    refused(lambda: logit_diff(logits, letters, answer), "answer")
    refused(lambda: patch_sweep(model, inputs, inputs, letters, answer, layers=[0]), "answer")
    refused(lambda: attribute_knockouts(model, inputs, [ko.LV()], letters, answer), "answer")


@FUZZ
@given(letters=BAD_LETTERS)
def test_letter_ids_that_are_not_token_ids(setup, letters):
    model, inputs, _ = setup
    refused(lambda: logit_diff(torch.randn(1, model.cfg.d_vocab), letters, 0), "letter")
    refused(lambda: patch_sweep(model, inputs, inputs, letters, 0, layers=[0]), "letter")
    refused(lambda: attribute_knockouts(model, inputs, [ko.LV()], letters, 0), "letter")
    if not (isinstance(letters, list) and len(letters) < 2):  # the lens reads a single token too
        refused(lambda: logit_lens(model, inputs, letter_ids=letters), "letter")


@FUZZ
@given(row=BAD_INDEX)
def test_rows_and_positions(setup, row):
    model, inputs, letters = setup
    refused(lambda: logit_lens(model, inputs, letters, row=row), "row")
    refused(
        lambda: logit_lens(model, inputs, letters, position=10**6 if row is None or isinstance(row, int) else row),
        "position",
    )
    refused(lambda: attention_to_frames(model, inputs, row=row), "row")


@FUZZ
@given(layers=st.one_of(st.lists(BAD_INDEX, min_size=1, max_size=3), st.just([]), st.text(max_size=3), st.just(7)))
def test_layer_selections(setup, layers):
    model, inputs, letters = setup
    if isinstance(layers, list) and layers and all(isinstance(l, int) and 0 <= l < 4 for l in layers):
        return  # a valid selection drawn by chance
    refused(lambda: patch_sweep(model, inputs, inputs, letters, 0, layers=layers), "layers")
    refused(lambda: model.run_with_hooks(inputs, fwd_hooks=ko.LV().hooks(inputs, layers=layers)), "layer")


def test_queries_and_sites_are_named(setup):
    model, inputs, letters = setup
    refused(lambda: attention_to_frames(model, inputs, query="everything"), "query")
    refused(lambda: patch_sweep(model, inputs, inputs, letters, 0, site="resid_mid_post"), "site")
    refused(lambda: attribute_knockouts(model, inputs, [ko.LV()], letters, 0, readout="probs"), "readout")


# --- the run API (RunConfig: what `vlens run` builds from its flags) and the flow helpers --------

RUN_FIELDS = {
    "frames": st.one_of(st.integers(-3, 0), st.floats(allow_nan=True), st.text(max_size=2), st.booleans()),
    "window": st.one_of(st.integers(-3, 0), st.floats(), st.none()),
    "limit": st.one_of(st.integers(-3, 0), st.floats(), st.text(max_size=2)),
    "shard": st.one_of(
        st.tuples(st.integers(-2, 5), st.integers(-2, 5)).filter(lambda s: not 0 <= s[0] < s[1]),
        st.tuples(st.floats(), st.integers(1, 3)),
        st.lists(st.integers(0, 3), max_size=1),
        st.integers(),
        st.text(max_size=3),
    ),
    "dtype": st.text(max_size=6).filter(lambda s: s not in ("float32", "float16", "bfloat16")),
    "engine": st.text(max_size=6).filter(lambda s: s not in ("fast", "naive")),
    "max_memory_gib": st.one_of(
        st.floats(max_value=0), st.floats(allow_nan=True).filter(lambda x: x != x), st.text(max_size=2)
    ),
    "controls": st.one_of(st.integers(-5, -1), st.floats(), st.text(max_size=2)),
    "protocols": st.one_of(st.text(max_size=8), st.lists(st.integers(), min_size=1, max_size=2), st.integers()),
    "data": st.one_of(st.just(""), st.integers(), st.none()),
    "options": st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)),
}


@FUZZ
@given(data=st.data())
def test_run_config_fields(data, tmp_path):
    from vlens.experiments.registry import available
    from vlens.run import RunConfig

    name = data.draw(st.sampled_from(sorted(RUN_FIELDS)))
    value = data.draw(RUN_FIELDS[name])
    if name == "protocols" and isinstance(value, str):
        names = [p.strip() for p in value.split(",") if p.strip()]
        if names and all(p in available() for p in names) and len(set(names)) == len(names):
            return  # a valid list of protocols: not a bad argument
    kwargs = {"model": str(tmp_path), "data": "synthetic:0", "out": str(tmp_path / "run"), name: value}
    refused(lambda: RunConfig(**kwargs), name, "protocol")


@FUZZ
@given(
    layer=st.one_of(st.integers(-5, -1), st.integers(4, 50), st.floats(), st.text(max_size=2), st.booleans()),
    k=st.one_of(st.integers(-3, 0), st.integers(5, 50), st.floats(), st.none(), st.booleans()),
)
def test_flow_windows(layer, k):
    from vlens.interventions.flow import flow_window

    refused(lambda: flow_window(layer, 3, 4), "centre")
    refused(lambda: flow_window(1, k, 4), "k=")


@FUZZ
@given(
    ranges=st.one_of(
        st.integers(),
        st.text(max_size=3),
        st.dictionaries(st.text(max_size=6), st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=2),
        st.fixed_dictionaries(
            {
                "cross_frame": st.one_of(
                    st.tuples(st.integers(-3, 6), st.integers(-3, 6)).filter(lambda v: not 0 <= v[0] < v[1] <= 4),
                    st.text(max_size=2),
                    st.lists(st.integers(0, 3), max_size=1),
                )
            }
        ),
    )
)
def test_effective_pathway_ranges(ranges):
    from vlens.interventions.flow import effective_ranges

    refused(lambda: effective_ranges(4, ranges), "effective")


def test_attention_flow_sources(setup):
    from vlens.interventions.flow import attention_flow

    model, inputs, _ = setup
    refused(lambda: attention_flow(model, inputs, sources=("option",)), "source")


def test_misspelt_hook_names_are_named_with_the_closest(setup):
    """TransformerLens raises a bare KeyError for these in run_with_hooks and caches nothing for
    them in a names_filter list; vlens names the argument and the hook points it may have meant."""
    model, inputs, _ = setup
    with pytest.raises(ValueError, match=r"fwd_hooks: 'blocks.0.hook_resid_pots' .*'blocks.0.hook_resid_post'"):
        model.run_with_hooks(inputs, fwd_hooks=[("blocks.0.hook_resid_pots", lambda x, hook: x)])
    refused(lambda: model.run_with_cache(inputs, names_filter=["blocks.0.hook_resid_pots"]), "names_filter")
    refused(lambda: model.run_with_cache(inputs, names_filter="hook_embedd"), "names_filter")
    _, cache = model.run_with_cache(inputs, names_filter=["blocks.0.hook_resid_post"])  # a right name still works
    assert list(cache.keys()) == ["blocks.0.hook_resid_post"]
