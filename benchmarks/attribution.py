"""Attribution against exact results: rank agreement per protocol, and the CPU time ratio.

    python benchmarks/attribution.py organism [--samples 12]     # the shipped organism, full study
    python benchmarks/attribution.py families                    # tiny random checkpoints, every family
    python benchmarks/attribution.py patching [--samples 6]      # attribution patching vs patch_sweep
    python benchmarks/attribution.py timing --shape 0.5B         # attribution / engine wall time
    python benchmarks/attribution.py flops                       # the FLOP model at 0.5B / 7B shapes

Per protocol (global1, global2, windows) and metric: Spearman between the estimated and the exact
change (pooled over samples × configurations, and the median per sample), and top-k agreement of
the k largest changes by magnitude. Exact = vlens.interventions.sweep.run_sweep; attribution =
vlens.interventions.attribution.attribute_sample. Timings: one thread (the machine is shared), medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from vlens import HookedVideoLLM
from vlens.experiments.study import configs_for
from vlens.inputs.prompts import letter_token_ids, mc_question
from vlens.interventions.attribution import attribute_sample
from vlens.interventions.attribution_validation import spearman, top_k_overlap
from vlens.interventions.sweep import run_sweep
from vlens.metrics import score

PROTOCOLS = ("global1", "global2", "windows")
# (record field of the estimate, exact score field): first-order and readout-corrected
FIELDS = {
    "Δ logit diff (linear)": ("logit_diff_linear", "logit_diff"),
    "Δ logit diff (readout)": ("logit_diff", "logit_diff"),
    "Δ p(correct) (linear)": ("p_correct_linear", "p_correct"),
    "Δ p(correct) (readout)": ("p_correct", "p_correct"),
}


def study(n_layers: int) -> list:
    return [c for p in PROTOCOLS for c in configs_for(p, n_layers)]


def compare(model, inputs, letters, answer, configs, timing: dict | None = None):
    """(estimated, exact) changes per field and protocol for one sample."""
    t0 = time.perf_counter()
    exact_logits = run_sweep(model, inputs, configs)
    t1 = time.perf_counter()
    rec = attribute_sample(model, inputs, configs, letters, answer)
    t2 = time.perf_counter()
    if timing is not None:
        timing["engine"].append(t1 - t0)
        timing["attribution (letters)"].append(t2 - t1)
        for readout in ("metrics", "logit_diff"):
            t3 = time.perf_counter()
            attribute_sample(model, inputs, configs, letters, answer, readout=readout)
            timing[f"attribution ({readout})"].append(time.perf_counter() - t3)
    clean = score(exact_logits["clean"], letters, answer)
    out = defaultdict(lambda: ([], []))
    for c in configs:
        ex = score(exact_logits[c.name], letters, answer)
        proto = c.name.split("/")[0]
        for label, (f_est, f_ex) in FIELDS.items():
            out[(label, proto)][0].append(rec[c.name][f_est] - clean[f_ex])
            out[(label, proto)][1].append(ex[f_ex] - clean[f_ex])
    return out


def summarise(per_sample: list[dict], k_of: dict[str, int]) -> None:
    print(
        f"{'metric':26s} {'protocol':9s} {'pooled ρ':>9s} {'median ρ':>9s} {'top-k':>10s}  {'mean |exact|':>12s} {'mean |err|':>10s}"
    )
    for label in FIELDS:
        for proto in PROTOCOLS:
            est = [np.array(s[(label, proto)][0]) for s in per_sample]
            ex = [np.array(s[(label, proto)][1]) for s in per_sample]
            rho = [spearman(a, b) for a, b in zip(est, ex)]
            k = k_of[proto]
            topk = [top_k_overlap(a, b, k) for a, b in zip(est, ex)]
            pooled = spearman(np.concatenate(est), np.concatenate(ex))
            err = np.mean(np.abs(np.concatenate(est) - np.concatenate(ex)))
            print(
                f"{label:26s} {proto:9s} {pooled:9.3f} {np.nanmedian(rho):9.3f} {np.mean(topk):6.2f}@{k:<3d} "
                f"{np.mean(np.abs(np.concatenate(ex))):12.3f} {err:10.3f}"
            )


def organism(args) -> None:
    from vlens.data import synthetic
    from vlens.organism import checkpoint_dir

    model = HookedVideoLLM.from_pretrained(checkpoint_dir())
    configs = study(model.cfg.n_layers)
    samples = synthetic.generate(args.samples, seed=1)
    timing: dict = defaultdict(list)
    per_sample = []
    for s in samples:
        inputs = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps)
        letters = letter_token_ids(model.tokenizer, len(s.options))
        per_sample.append(compare(model, inputs, letters, s.answer, configs, timing))
    print(
        f"organism: {model.cfg.n_layers} layers, {len(configs)} configurations, {len(samples)} samples "
        f"(synthetic seed 1), {inputs.seq_len} positions"
    )
    summarise(per_sample, {"global1": 3, "global2": 1, "windows": 3})
    report_timing(timing)


def report_timing(timing: dict) -> None:
    eng = statistics.median(timing["engine"])
    for name in ("attribution (letters)", "attribution (metrics)", "attribution (logit_diff)"):
        t = statistics.median(timing[name])
        print(f"{name:28s}: median {t:.3f} s/sample vs engine {eng:.3f} s → {t / eng:.1%}")


def families(args) -> None:
    from vlens import testing

    builders = {
        "onevision": (testing.make_tiny_onevision, {}),
        "llava-next-video": (testing.make_tiny_llava_next_video, {}),
        "video-llava": (testing.make_tiny_video_llava, {}),
        "qwen2.5-vl": (testing.make_tiny_qwen2_5_vl, {"fps": 3.0}),
        "internvl": (testing.make_tiny_internvl, {}),
        "longva": (testing.make_tiny_longva, {}),
        "llava-next-video-qwen": (testing.make_tiny_llava_next_video_qwen, {}),
        "internvideo2.5": (testing.make_tiny_internvideo2_5, {}),
    }
    root = Path(tempfile.mkdtemp(prefix="vlens-attr-"))
    rng = np.random.default_rng(0)
    for name, (make, kw) in builders.items():
        path = make(root / name, n_layers=6, seed=1)
        model = HookedVideoLLM.from_pretrained(path)
        configs = study(model.cfg.n_layers)
        per_sample = []
        for i in range(args.samples):
            clip = rng.integers(0, 256, size=(4, 48, 48, 3), dtype=np.uint8)
            inputs = model.to_inputs(clip, mc_question("what is shown", ["a", "b", "c", "d"]), n_frames=4, **kw)
            letters = letter_token_ids(model.tokenizer, 4)
            per_sample.append(compare(model, inputs, letters, i % 4, configs))
        print(
            f"\n{name}: {model.cfg.n_layers} layers, {len(configs)} configurations, {args.samples} samples, "
            f"{inputs.seq_len} positions"
        )
        rows = [(label, p) for label in ("Δ logit diff (linear)", "Δ p(correct) (readout)") for p in PROTOCOLS]
        for label, proto in rows:
            est = np.concatenate([s[(label, proto)][0] for s in per_sample])
            ex = np.concatenate([s[(label, proto)][1] for s in per_sample])
            print(
                f"  {label:24s} {proto:8s} pooled ρ {spearman(est, ex):6.3f}  mean |exact| {np.abs(ex).mean():.4f}  "
                f"mean |err| {np.abs(est - ex).mean():.4f}"
            )


def patching(args) -> None:
    from vlens.data import synthetic
    from vlens.interventions.attribution_patching import attribution_patch
    from vlens.interventions.patching import corrupt, patch_sweep
    from vlens.organism import checkpoint_dir

    model = HookedVideoLLM.from_pretrained(checkpoint_dir())
    samples = synthetic.generate(args.samples + 1, seed=1, kinds=("direction", "first", "count"))
    t_exact, t_attr = [], []
    res = defaultdict(lambda: ([], []))
    for i, s in enumerate(samples[:-1]):
        clean = model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps)
        letters = letter_token_ids(model.tokenizer, len(s.options))
        for kind in ("reverse", "video"):
            other = samples[i + 1]
            corrupted = corrupt(
                model, clean, kind, other=model.to_inputs(other.video, "x", n_frames=8, fps=other.fps).videos[0]
            )
            for site in ("resid_pre", "attn_out", "mlp_out", "z"):
                t0 = time.perf_counter()
                ex = patch_sweep(model, clean, corrupted, letters, s.answer, site=site)
                t1 = time.perf_counter()
                est = attribution_patch(model, clean, corrupted, letters, s.answer, site=site)
                t2 = time.perf_counter()
                t_exact.append(t1 - t0)
                t_attr.append(t2 - t1)
                d_ex = (ex.raw - ex.corrupted_diff).flatten().numpy()
                d_est = (est.raw - est.corrupted_diff).flatten().numpy()
                res[(site, kind)][0].append(d_est)
                res[(site, kind)][1].append(d_ex)
    print(f"patching on the organism: {args.samples} samples, corruptions reverse / other video")
    print(f"{'site':10s} {'corruption':10s} {'median ρ':>9s} {'top-5':>6s} {'mean |exact|':>12s} {'mean |err|':>10s}")
    for (site, kind), (est, ex) in res.items():
        rho = [spearman(a, b) for a, b in zip(est, ex)]
        top = [top_k_overlap(a, b, 5) for a, b in zip(est, ex)]
        e, x = np.concatenate(est), np.concatenate(ex)
        print(
            f"{site:10s} {kind:10s} {np.nanmedian(rho):9.3f} {np.mean(top):6.2f} {np.abs(x).mean():12.3f} {np.abs(e - x).mean():10.3f}"
        )
    print(
        f"time: attribution patching {sum(t_attr):.1f} s vs patch_sweep {sum(t_exact):.1f} s → {sum(t_attr) / sum(t_exact):.1%}"
    )


def timing(args) -> None:
    from _common import checkpoint, clip

    model = HookedVideoLLM.from_pretrained(checkpoint(args.shape))
    configs = study(model.cfg.n_layers)
    inputs = model.to_inputs(
        clip(args.frames),
        mc_question("Which direction is it moving?", ["left", "right", "up", "down"]),
        n_frames=args.frames,
    )
    letters = letter_token_ids(model.tokenizer, 4)
    print(
        f"{args.shape}: {model.cfg.n_layers} layers, {len(configs)} configurations, {args.frames} frames, "
        f"{inputs.seq_len} positions, threads={torch.get_num_threads()}"
    )
    t: dict = defaultdict(list)
    per_sample = []
    for _ in range(args.reps):
        per_sample.append(compare(model, inputs, letters, 0, configs, t))
    summarise(per_sample[:1], {"global1": 3, "global2": 1, "windows": 3})
    report_timing(t)


def attribution_flops(c, layout, specs, n_layers: int, k: int) -> float:
    """FLOPs of attribute_knockouts: the clean forward; k backward directions that need input
    gradients only (each linear layer's matmul once more per direction, attention's backward ≈ 2.5×
    its forward: recomputed scores, dV, dP, dQ, dK); per layer one dense-mask attention call (QKᵀ and
    AV over all N keys) for the clean rows of any spec and one per spec over its rows."""
    from vlens.interventions.sweep import SweepPlan

    N = len(layout)
    full = SweepPlan({}, n_layers, N).flops(c)[0]  # one forward, as the engine counts it
    H, d = c.n_heads, c.d_head
    attn = n_layers * 4 * H * d * (N * (N + 1) / 2)
    blocked = [s.blocked(layout) for s in specs]
    rows = [int(b.any(-1).sum()) for b in blocked]
    union = int(torch.stack([b.any(-1) for b in blocked]).any(0).sum())
    dz = n_layers * 4 * H * d * N * (union + sum(rows))
    return full + k * ((full - attn) + 2.5 * attn) + dz


def flops(args) -> None:
    """The FLOP model at the study's real shapes (a full CPU run of a 7B model is out of reach)."""
    from types import SimpleNamespace

    from _common import SHAPES
    from sweep import synthetic_layout

    from vlens import knockout as ko
    from vlens.interventions.sweep import plan

    specs = [ko.LV(), ko.VT(), ko.VS(), ko.LV() | ko.VT() | ko.VS()]
    for name in ("0.5B", "7B"):
        shape = SHAPES[name]
        c = SimpleNamespace(
            n_heads=shape["n_heads"],
            n_key_value_heads=shape["n_kv_heads"],
            d_head=shape["d_model"] // shape["n_heads"],
            d_model=shape["d_model"],
            d_mlp=shape["d_mlp"],
            d_vocab=shape["vocab_size"],
        )
        L = shape["n_layers"]
        for frames in (4, 32):
            layout = synthetic_layout(frames, 196, 14, 60)
            engine, naive = plan(study(L), layout, L).flops(c)
            ratios = " ".join(f"k={k}: {attribution_flops(c, layout, specs, L, k) / engine:5.1%}" for k in (1, 2, 3))
            print(
                f"{name} ({L} layers), {frames} frames ({len(layout)} positions): engine/naive {engine / naive:5.1%}; "
                f"attribution/engine {ratios}  (k = backward directions)"
            )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("organism", "families", "patching", "timing", "flops"))
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--shape", default="0.5B")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"organism": organism, "families": families, "patching": patching, "timing": timing, "flops": flops}[args.what](
        args
    )


if __name__ == "__main__":
    main()
