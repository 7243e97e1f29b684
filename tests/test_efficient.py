"""Efficient inference equals its knockout equivalent; FLOPs formulas equal a direct count."""

from __future__ import annotations

import pytest
import torch
from conftest import frames
from torch.utils.flop_counter import FlopCounterMode

from vlens.interventions import flops
from vlens.interventions.efficient import (
    EfficientConfig,
    efficient_forward,
    equivalent_hooks,
    generate_efficient,
)

ATOL = 1e-4
CONFIGS = [
    EfficientConfig(2, 1),
    EfficientConfig(3, 0),
    EfficientConfig(4, 2),
    EfficientConfig(0, 0),
    EfficientConfig(1, 3),
]


@pytest.fixture(scope="module")
def inputs(model):
    return model.to_inputs(frames(3, seed=7), "which object appears first", n_frames=3)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_efficient_prefill_equals_knockout_equivalent(model, inputs, config):
    out = efficient_forward(model, inputs, config)
    with torch.no_grad():
        ref = model.run_with_hooks(inputs, fwd_hooks=equivalent_hooks(inputs, config, model.cfg.n_layers))
    keep = ~inputs.layout.is_vision
    assert torch.equal(out.positions[0].cpu(), keep.nonzero().flatten())
    assert (out.logits[0] - ref[0, keep]).abs().max().item() <= ATOL
    with torch.no_grad():
        clean = model(inputs)
    if config.exit_layer < model.cfg.n_layers:
        assert (out.logits[0, -1] - clean[0, -1]).abs().max() > 1e-4  # it does change the model


def test_efficient_generation_equals_knockout_generation(model, inputs):
    config = EfficientConfig(3, 2)
    ours = generate_efficient(model, inputs, config, max_new_tokens=5)
    ref = model.generate(inputs, max_new_tokens=5, fwd_hooks=equivalent_hooks(inputs, config, model.cfg.n_layers))
    assert ours.tolist() == ref[:, : ours.shape[1]].tolist()


def test_scaled_config_and_bad_values():
    assert EfficientConfig.scaled(28) == EfficientConfig(18, 8)
    assert EfficientConfig.scaled(24) == EfficientConfig(15, 7)
    with pytest.raises(ValueError, match="exit_layer"):
        EfficientConfig(9, 0).check(4)


def _count(fn) -> dict:
    with FlopCounterMode(display=False) as counter:
        fn()
    return {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}


def test_flops_formula_matches_a_direct_count(model, inputs):
    """Count matmuls of one clean decoder layer's attention with torch's FLOP counter (math
    SDPA decomposed into bmm) and compare with the formula (causal halves counted exactly by
    the formula, so compare against the dense count scaled by the causal fraction)."""
    cfg, lay = model.cfg, inputs.layout
    n = len(lay)
    q = torch.randn(1, cfg.n_heads, n, cfg.d_head)
    k = torch.randn(1, cfg.n_heads, n, cfg.d_head)
    counted = _count(lambda: torch.softmax(q @ k.transpose(-1, -2), -1) @ k)
    dense = sum(counted.values())
    formula = flops.clean_flops(cfg, lay)[0].attention
    assert formula == pytest.approx(dense * (n + 1) / (2 * n))
    x = torch.randn(1, n, cfg.d_model)
    block = model.blocks[0]
    lin = _count(
        lambda: (
            block.attn.q_proj(x),
            block.attn.k_proj(x),
            block.attn.v_proj(x),
            block.attn.o_proj(torch.randn(1, n, cfg.n_heads * cfg.d_head)),
            block.mlp(x),
        )
    )
    assert sum(lin.values()) == pytest.approx(flops.clean_flops(cfg, lay)[0].linear)


def test_attention_flops_fraction_like_the_paper():
    """28 layers, 32 frames × 196 tokens, E=18, P=8: the paper's ≈ 37.5%."""
    from types import SimpleNamespace

    from vlens.inputs.layout import VideoLayout, VisionToken

    tokens = [VisionToken("video", f, r, c) for f in range(32) for r in range(14) for c in range(14)] + [
        VisionToken("separator")
    ]
    layout = VideoLayout.build(torch.tensor([False] * 14 + [True] * len(tokens) + [False] * 60), tokens)
    cfg = SimpleNamespace(n_layers=28, n_heads=28, n_key_value_heads=4, d_head=128, d_model=3584, d_mlp=18944)
    s = flops.summary(cfg, layout, EfficientConfig(18, 8))
    assert 0.35 < s["attention_fraction"] < 0.40


def test_vlens_run_efficient(onevision_dir, tmp_path):
    from vlens.cli import main
    from vlens.experiments.store import load_results

    out = tmp_path / "eff"
    assert (
        main(
            [
                "run",
                "efficient",
                "--model",
                str(onevision_dir),
                "--data",
                "synthetic:0,n=4",
                "--frames",
                "8",
                "--exit-layer",
                "2",
                "--prune-layers",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    settings, records = load_results(out)
    assert settings["exit_layer"] == 2 and settings["prune_layers"] == 1
    assert {r["config"] for r in records} == {"clean", "efficient/E2-P1"}
    assert "## Efficient inference" in (out / "report.md").read_text()
    assert (
        main(
            [
                "run",
                "efficient,global1",
                "--model",
                str(onevision_dir),
                "--data",
                "synthetic:0,n=4",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )


def test_every_hook_fires_on_the_rows_computed(model, inputs):
    """One forward: the plan runs through the model's blocks, so q/k/v/z and the residual hooks
    fire in every layer, on all rows before the exit and on the kept rows from it on."""
    from vlens.interventions.efficient import EfficientPlan

    config = EfficientConfig(2, 1)
    plan = EfficientPlan(config, inputs.layouts, model.cfg.n_layers)
    with torch.no_grad():
        logits, cache = model.run_with_cache(
            inputs, plan=plan, names_filter=lambda n: n.endswith(("hook_z", "hook_resid_pre", "hook_q"))
        )
    n, kept = inputs.seq_len, int((~inputs.layout.is_vision).sum())
    for layer in range(model.cfg.n_layers):
        rows = n if layer < config.exit_layer else kept
        for name in ("hook_resid_pre", "attn.hook_q", "attn.hook_z"):
            assert cache[f"blocks.{layer}.{name}"].shape[1] == rows, (layer, name)
    assert "per_frame" in model.last_attention_path  # layer 0 attends per frame
    assert torch.equal(logits, efficient_forward(model, inputs, config).logits)


def test_a_plan_belongs_to_its_inputs(model, inputs):
    from vlens.components.per_call import InterventionError
    from vlens.interventions.efficient import EfficientPlan

    other = model.to_inputs(frames(2, seed=3), "what color is the object", n_frames=2)
    plan = EfficientPlan(EfficientConfig(2, 1), other.layouts, model.cfg.n_layers)
    with pytest.raises(InterventionError, match="same inputs"), torch.no_grad():
        model(inputs, plan=plan)


def test_a_plan_refuses_rows_that_keep_different_positions_before_running(model):
    """A padded batch whose rows keep different positions cannot leave the sequence together:
    refused by the plan's batch check, before any block runs (no hook fires)."""
    from vlens.components.per_call import InterventionError
    from vlens.interventions.efficient import EfficientPlan

    batch = model.to_inputs(
        [frames(2, seed=1), frames(2, seed=2)],
        ["what color is the object", "how many objects are moving to the left in the video"],
        n_frames=2,
    )
    assert (batch["attention_mask"] == 0).any()
    plan = EfficientPlan(EfficientConfig(2, 0), batch.layouts, model.cfg.n_layers)
    fired = []
    with pytest.raises(InterventionError, match="one sample at a time"), torch.no_grad():
        model.run_with_hooks(batch, plan=plan, fwd_hooks=[("hook_embed", lambda t, hook: fired.append(1))])
    assert not fired
