"""The generalized length penalty: properties, presets, and group handling."""
from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harmo.server.rewards.length import LengthConfig, group_length_rewards, penalty

configs = st.builds(
    lambda direction, shape, units, tau, p_max, span: LengthConfig(
        preset="custom", reference="mean_correct" if units != "range" else "group_min", units=units,
        direction=direction, shape=shape, tau=tau, p_max=p_max, span=span),
    st.sampled_from(["short", "long", "both"]),
    st.sampled_from(["linear", "quadratic", "step"]),
    st.sampled_from(["relative", "absolute"]),
    st.floats(0, 2), st.floats(0, 5), st.floats(0.01, 1000),
)
lengths = st.floats(0, 1e5)
refs = st.floats(1, 1e5)


@settings(max_examples=300)
@given(configs, lengths, refs)
def test_bounded(cfg, length, ref):
    v = penalty(length, ref, cfg)
    assert cfg.bonus - cfg.p_max - 1e-9 <= v <= cfg.bonus + 1e-9


@settings(max_examples=300)
@given(configs, st.floats(-1, 1), refs)
def test_zero_inside_tolerance(cfg, where, ref):
    # a length whose deviation from the reference is within tau
    length = ref + where * cfg.tau * (ref if cfg.units == "relative" else 1.0)
    assume(length >= 0)
    d = (length - ref) / ref if cfg.units == "relative" else length - ref
    assume(abs(d) <= cfg.tau)  # float rounding at the edge
    assert penalty(length, ref, cfg) == cfg.bonus


@settings(max_examples=300)
@given(configs, lengths, lengths, refs)
def test_monotone_in_direction(cfg, a, b, ref):
    lo, hi = sorted((a, b))
    pa, pb = penalty(lo, ref, cfg), penalty(hi, ref, cfg)
    if cfg.direction == "long":
        assert pb <= pa + 1e-12  # longer is never better
    elif cfg.direction == "short":
        assert pa <= pb + 1e-12  # shorter is never better
    else:
        # farther from the reference on the same side is never better
        if lo >= ref:
            assert pb <= pa + 1e-12
        if hi <= ref:
            assert pa <= pb + 1e-12


@settings(max_examples=200)
@given(configs, lengths, refs)
def test_no_penalty_on_the_unpenalised_side(cfg, length, ref):
    assume(cfg.direction != "both")
    if (cfg.direction == "long" and length <= ref) or (cfg.direction == "short" and length >= ref):
        assert penalty(length, ref, cfg) == cfg.bonus


def test_harmo_defaults_penalise_short_answers():
    cfg = LengthConfig()  # harmo preset: relative, tau 0.2, P_max 0.5, short
    assert penalty(100, 100, cfg) == 0.0
    assert penalty(81, 100, cfg) == 0.0
    assert penalty(60, 100, cfg) == pytest.approx(-0.5 * 0.2)
    assert penalty(0, 100, cfg) == pytest.approx(-0.5 * 0.8)
    assert penalty(500, 100, cfg) == 0.0


@pytest.mark.parametrize("length,expected", [(0, 0.0), (16000, 0.0), (16384, 0.0), (18432, -0.5),
                                             (20480, -1.0), (30000, -1.0)])
def test_dapo_soft_overlong(length, expected):
    cfg = LengthConfig(preset="dapo", max_length=20480, buffer=4096)
    l_max, l_buf = 20480, 4096
    formula = 0.0 if length <= l_max - l_buf else ((l_max - l_buf) - length) / l_buf if length <= l_max else -1.0
    assert formula == pytest.approx(expected)
    [got] = group_length_rewards([length], [True], cfg)
    assert got == pytest.approx(expected)


def test_kimi_length_reward():
    cfg = LengthConfig(preset="kimi")
    lens = [100, 200, 300, 500]
    correct = [True, False, True, False]
    got = group_length_rewards(lens, correct, cfg)
    lam = [0.5 - (l - 100) / (500 - 100) for l in lens]
    want = [lam[0], min(0.0, lam[1]), lam[2], min(0.0, lam[3])]
    assert got == pytest.approx(want)


def test_group_reference_from_correct_members():
    cfg = LengthConfig(tau=0.0, p_max=1.0, direction="both")
    # correct lengths 100 and 300: mean 200
    got = group_length_rewards([100, 300, 200, 400], [True, True, False, False], cfg)
    assert got == pytest.approx([-0.5, -0.5, 0.0, -1.0])
    shortest = LengthConfig(tau=0.0, p_max=1.0, direction="both", reference="shortest_correct")
    assert group_length_rewards([100, 300], [True, True], shortest) == pytest.approx([0.0, -1.0])


def test_no_correct_member_means_no_reference():
    assert group_length_rewards([10, 20], [False, False], LengthConfig()) == [None, None]


def test_incorrect_members_options():
    base = dict(tau=0.0, p_max=1.0, direction="both")
    assert group_length_rewards([100, 50], [True, False], LengthConfig(**base, incorrect="none")) == [0.0, None]


@pytest.mark.parametrize("bad", [
    {"preset": "dapo"},                                   # needs max_length and buffer
    {"reference": "fixed"},                               # needs fixed_length
    {"units": "range", "reference": "mean_correct"},
    {"tau": -1},
    {"direction": "sideways"},
    {"shapes": "linear"},
])
def test_invalid_configs(bad):
    with pytest.raises(ValueError):
        LengthConfig(**bad)


def test_pipeline_uses_token_counts_and_reports_bad_ones(pipeline):
    from tests.conftest import score

    items = [{"group_id": "g", "task": "choice", "reference": "A", "response": "(A)",
              "metadata": {"response_length": n}} for n in (100, 100, 40)]
    items.append({"group_id": "g", "task": "choice", "reference": "A", "response": "(A) " + " ".join(f"w{k}" for k in range(99)),
                  "metadata": {"response_length": "lots"}})
    rs = score(pipeline, items, "harmo").results
    # reference: mean of the correct lengths 100, 100, 40, 100 (the last one counted in words) = 85
    assert rs[0].components["length"] == 0.0
    assert rs[2].components["length"] == pytest.approx(-0.5 * ((85 - 40) / 85 - 0.2))
    assert [e.code for e in rs[3].errors] == ["bad_metadata"]
    assert rs[0].errors == []
