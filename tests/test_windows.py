"""ko.window(x, k, align=...): the layers covered, the errors, the label."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlens import knockout as ko
from vlens.interventions.knockout import KnockoutError


def test_end_alignment_is_unchanged():
    assert ko.window(3, 2).resolve(4) == (2, 3)
    assert ko.window(3, 2) == ko.window(3, 2, align="end")
    assert str(ko.window(27, 4)) == "layers 24–27"


def test_centred_windows_odd_and_even():
    assert ko.window(10, 9, align="center").resolve(28) == tuple(range(6, 15))  # map-the-flow: l-4 .. l+4
    assert str(ko.window(10, 9, align="center")) == "layers 6–14"
    assert ko.window(5, 4, align="center").resolve(28) == (3, 4, 5, 6)  # even k: one more before x
    assert ko.window(5, 1, align="center").resolve(28) == (5,)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(1, 12), st.sampled_from(["end", "center"]), st.integers(1, 40))
def test_window_has_k_consecutive_layers_around_x(x, k, align, n_layers):
    sel = ko.window(x, k, align=align)
    if align == "end":
        expected = list(range(x - k + 1, x + 1))
    elif k % 2:  # odd: symmetric
        expected = list(range(x - k // 2, x + k // 2 + 1))
    else:  # even: documented as x-k//2 .. x+k//2-1
        expected = list(range(x - k // 2, x + k // 2))
    if expected[0] < 0 or expected[-1] >= n_layers:
        with pytest.raises(KnockoutError, match=r"covers layers .* the model has"):
            sel.resolve(n_layers)
        return
    got = sel.resolve(n_layers)
    assert list(got) == expected and len(got) == k
    assert x in got
    assert all((l in sel) == (l in got) for l in range(-2, n_layers + 2))
    assert str(sel) == f"layers {got[0]}–{got[-1]}"


def test_window_errors_name_the_problem():
    with pytest.raises(KnockoutError, match="align must be 'end' or 'center'"):
        ko.window(3, 3, align="centre")
    with pytest.raises(KnockoutError, match="k >= 1"):
        ko.window(3, 0, align="center")
    with pytest.raises(KnockoutError, match=r"window\(1, k=5, align='center'\) covers layers -1..3"):
        ko.window(1, 5, align="center").resolve(28)
    with pytest.raises(KnockoutError, match="integer layer index"):
        ko.window(3.0, 3, align="center")
