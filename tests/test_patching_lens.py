"""Activation patching and the logit lens."""

from __future__ import annotations

import pytest
import torch
from conftest import frames

from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.lens import attention_to_frames, logit_lens
from vlens.interventions.patching import (
    PatchingError,
    corrupt,
    logit_diff,
    patch_naive,
    patch_sweep,
    position_groups,
)

ATOL = 1e-4


@pytest.fixture(scope="module")
def clean(model):
    return model.to_inputs(
        frames(3, seed=11), mc_question("What color is the object?", ["red", "blue", "green", "white"]), n_frames=3
    )


@pytest.fixture(scope="module")
def letters(model):
    return letter_token_ids(model.tokenizer, 4)


def test_position_groups_partition_the_interesting_positions(clean):
    groups = position_groups(clean.layout)
    assert list(groups)[:3] == ["frame 0", "frame 1", "frame 2"]
    frames_union = torch.cat([groups[f"frame {i}"] for i in range(3)])
    assert set(frames_union.tolist()) | set(clean.layout.positions("separator").tolist()) == set(
        groups["video"].tolist()
    )
    assert groups["final"].tolist() == [clean.seq_len - 1]
    assert clean.seq_len - 1 not in groups["question"].tolist()


def test_identical_inputs_have_no_effect(model, clean, letters):
    res = patch_sweep(model, clean, clean, letters, answer=1)
    assert torch.isnan(res.effect).all()  # normalised effect undefined when clean == corrupted
    assert (res.raw - res.clean_diff).abs().max() <= ATOL


@pytest.mark.parametrize("site", ["resid_pre", "attn_out", "mlp_out"])
def test_batched_sweep_equals_naive_loop_and_tl(model, clean, letters, site):
    corrupted = corrupt(model, clean, "reverse")
    res = patch_sweep(model, clean, corrupted, letters, answer=1, site=site, batch_size=5)
    naive = patch_naive(model, clean, corrupted, letters, answer=1, site=site)
    assert (res.raw - naive).abs().max() <= ATOL
    if site == "resid_pre":
        # patching the residual at every position of layer 0 restores the clean run exactly
        allpos = {"all": torch.arange(clean.seq_len)}
        full = patch_sweep(model, clean, corrupted, letters, answer=1, groups=allpos)
        torch.testing.assert_close(full.effect[:, 0], torch.ones(model.cfg.n_layers), atol=ATOL, rtol=0)
        # and the final position in every layer's input is what TransformerLens' patcher says
        # (its generic patcher on just those (layer, pos) cells: the full grid is seq_len x layers
        # forwards, a minute on 2 cores, and checks nothing more about our single-position group)
        import pandas as pd
        from transformer_lens import patching

        _, cache = model.run_with_cache(clean, names_filter=lambda n: "resid_pre" in n)
        cells = pd.DataFrame({"layer": range(model.cfg.n_layers), "pos": [clean.seq_len - 1] * model.cfg.n_layers})
        tl = patching.generic_activation_patch(
            model,
            corrupted,
            cache,
            lambda logits: logit_diff(logits[:, -1], letters, 1)[0],
            patch_setter=patching.layer_pos_patch_setter,
            activation_name="resid_pre",
            index_df=cells,
        )
        final = res.groups.index("final")
        torch.testing.assert_close(tl, res.raw[:, final].to(tl.dtype), atol=ATOL, rtol=0)


def test_per_head_z_sweep_shape(model, clean, letters):
    corrupted = corrupt(model, clean, "shuffle")
    res = patch_sweep(model, clean, corrupted, letters, answer=1, site="z", layers=[0, 3])
    assert res.effect.shape == (2, model.cfg.n_heads, len(res.groups))


def test_corruptions_and_layout_mismatch(model, clean):
    for kind, kw in [
        ("shuffle", {}),
        ("reverse", {}),
        ("replace", {"frame": 1}),
        ("video", {"other": frames(3, seed=99)}),
    ]:
        c = corrupt(model, clean, kind, **kw)
        assert c.layout.segment == clean.layout.segment
        assert not torch.equal(c["pixel_values_videos"], clean["pixel_values_videos"])
    q = corrupt(
        model, clean, "question", question=mc_question("What shape is the object?", ["red", "blue", "green", "white"])
    )
    assert (q["input_ids"] != clean["input_ids"]).sum() == 1
    longer = model.to_inputs(frames(4, seed=11), "what color", n_frames=4)
    with pytest.raises(PatchingError, match="same frame count"):
        patch_sweep(model, clean, longer, [1, 2], 0)
    with pytest.raises(PatchingError, match="same frame count"):
        corrupt(model, clean, "question", question="a much longer question than the one we had before it")
    with pytest.raises(PatchingError, match="unknown corruption"):
        corrupt(model, clean, "blur")


def test_lens_final_layer_equals_logits(model, clean, letters):
    lens = logit_lens(model, clean, letters, answer=1)
    with torch.no_grad():
        logits = model(clean)[0, -1]
    torch.testing.assert_close(lens.p_letters[-1], logits[letters].softmax(-1), atol=ATOL, rtol=0)
    assert lens.p_letters.shape == (model.cfg.n_layers + 1, 4)
    assert int(lens.rank[-1]) == int((logits[letters] > logits[letters[1]]).sum())
    raw = logit_lens(model, clean, letters, answer=1, apply_norm=False)
    assert not torch.allclose(raw.p_letters[-1], lens.p_letters[-1])


def test_lens_arguments_are_checked_before_the_forward(model, clean, letters):
    """The default position is the last one; an explicit last index gives the same; negative,
    out-of-range and badly typed arguments are ArgumentErrors naming the argument (no forward)."""
    from vlens.arguments import ArgumentError

    last = clean["input_ids"].shape[1] - 1
    a = logit_lens(model, clean, letters, answer=1)
    b = logit_lens(model, clean, letters, answer=1, position=last)
    assert torch.equal(a.p_letters, b.p_letters)
    assert not torch.equal(logit_lens(model, clean, letters, answer=1, position=3).p_letters, a.p_letters)
    for kwargs, name in [
        ({"position": -1}, "position"),
        ({"position": last + 1}, "position"),
        ({"row": 1}, "row"),
        ({"answer": -1}, "answer"),
        ({"answer": 1.0}, "answer"),
    ]:
        with pytest.raises(ArgumentError, match=name):
            logit_lens(model, clean, letters, **{"answer": 1, **kwargs})
    with pytest.raises(ArgumentError, match="letter_ids"):
        logit_lens(model, clean, [model.cfg.d_vocab_out, 1], answer=1)


def test_attention_to_frames_sums_to_one_and_matches_cache(model, clean):
    mass = attention_to_frames(model, clean)
    torch.testing.assert_close(mass.sum(-1), torch.ones(mass.shape[:2]), atol=1e-5, rtol=0)
    _, cache = model.run_with_cache(clean, names_filter=lambda n: n.endswith("hook_pattern"))
    lay = clean.layout
    q = lay.positions("text")
    p = cache["blocks.2.attn.hook_pattern"][0][:, q]
    frame1 = p[:, :, lay.frame_positions(1)].sum(-1).mean(-1)
    torch.testing.assert_close(mass[2, :, 1], frame1, atol=1e-5, rtol=0)


def test_run_patching_and_lens_through_the_cli(onevision_dir, model, tmp_path, capsys):
    """`vlens run windows,patching,lens`: stored raw diffs equal a direct patch_sweep, the lens
    record equals logit_lens, the report has the shared-layer-axis section, and a rerun is a no-op."""
    from vlens.cli import main
    from vlens.data import load_dataset
    from vlens.experiments.runner import sample_inputs
    from vlens.experiments.store import load_results

    out = tmp_path / "mech"
    data = "synthetic:3,n=3,frames=3"
    argv = [
        "run",
        "windows,patching,lens",
        "--model",
        str(onevision_dir),
        "--data",
        data,
        "--frames",
        "3",
        "--window",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    for name in ("report.md", "layers.png", "lens.png", "patching_resid_pre_video.png", "windows.png"):
        assert (out / name).exists(), name
    report = (out / "report.md").read_text()
    assert "one layer axis" in report and "### patching/resid_pre/video" in report and "### Logit lens" in report
    _, records = load_results(out)
    by = {(r["sample"], r["config"]): r for r in records}
    samples = load_dataset(data)
    s0, s1 = samples[0], samples[1]
    clean, other = sample_inputs(model, s0, 3), sample_inputs(model, s1, 3)
    letters = letter_token_ids(model.tokenizer, len(s0.options))
    res = patch_sweep(model, clean, corrupt(model, clean, "video", other=other.videos[0]), letters, s0.answer)
    stored = by[(s0.id, "patching/resid_pre/video")]
    assert stored["groups"] == res.groups and stored["other"] == s1.id
    assert torch.tensor(stored["raw"]).sub(res.raw).abs().max() <= ATOL
    lens = logit_lens(model, clean, letters, s0.answer)
    assert torch.tensor(by[(s0.id, "lens")]["p_correct"]).sub(lens.p_letters[:, s0.answer]).abs().max() <= ATOL
    n = len(records)
    assert main(argv) == 0  # resumed: nothing new
    assert len(load_results(out)[1]) == n
    # bad input: one sample cannot be corrupted by "the next sample's video"
    capsys.readouterr()
    assert (
        main(
            [
                "run",
                "patching",
                "--model",
                str(onevision_dir),
                "--data",
                "synthetic:3,n=1",
                "--frames",
                "3",
                "--out",
                str(tmp_path / "one"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "at least 2 samples" in capsys.readouterr().err
