"""Real resolutions and lengths: every realistic checkpoint (vlens.testing.realistic: the real
tokenizer, template, processor geometry) reading real H.264 videos at 640×360 and 1280×720 with
8, 32 and 64 frames (and a 2-minute video), then one forward at the 0.5B shape.

    python benchmarks/real_resolutions.py                        # every checkpoint, 8/32/64 frames
    python benchmarks/real_resolutions.py --models llava-onevision-qwen2-0.5b-ov-hf --frames 8 32
    python benchmarks/real_resolutions.py --forward-frames 8 32  # the 0.5B forward (LLaVA-OV) only

Per checkpoint × video × frame count: the seconds and peak RSS (above the level before the call)
of `model.to_inputs(video.mp4, …)` — decoding with decord, then the checkpoint's own HF
processor — the positions it makes, the video tokens per frame (per temporal group for the
Qwen-VL families) against the published number where the checkpoint states one for that frame
size, and two checks that the layout and the knockouts hold at that length: the frames (groups)
in the layout are the ones sampled, and LV-K / VT-K block exactly the edges the layout says
(text after the video × video positions; each frame's positions × the earlier frames'). Any
mismatch is printed as FAIL and the script exits 1.

The forward rows time one clean forward (and one with LV-K in every layer) of LLaVA-OneVision's
realistic checkpoint with the LM at Qwen2-0.5B's shape (24 × 896, 14/2 heads, MLP 4864, vocab
151,936; random weights) and the small vision tower (the LM is what a study spends its time in),
at the real 196 tokens a frame. Results: benchmarks/results/real-resolutions-cpu.txt.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # real_vocab (llama.cpp's vocabularies)
from _common import SHAPES, PeakRSS
from real_vocab import real_tokenizer

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.testing.realistic import make_realistic, realistic_spec, realistic_specs

QUESTION = "Which way does the red ball move?"
SIZES = {"640x360": (360, 640), "1280x720": (720, 1280)}


def h264(path: Path, height: int, width: int, seconds: float, fps: int = 30) -> Path:
    """A real H.264 (libx264, yuv420p) clip: a bright square crossing a moving gradient."""
    import av

    if path.exists():
        return path
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx // 3) % 256, (yy // 2) % 256, np.full_like(xx, 60)], -1).astype(np.uint8)
    n = int(seconds * fps)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for k in range(n):
            f = np.roll(base, k * 2, axis=1)
            s = height // 6
            x = (k * width // n) % (width - s)
            f[height // 2 - s // 2 : height // 2 + s // 2, x : x + s] = (250, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def expected_edges(layout) -> tuple[int, int]:
    """(LV-K, VT-K) edge counts the layout implies: the text after the last vision position ×
    the vision positions (frames and their separators); each frame's positions × the positions
    of the frames before it."""
    video = layout.is_video
    after = torch.zeros_like(video)
    after[int(layout.is_vision.nonzero().max()) + 1 :] = True
    after &= torch.tensor([s not in ("pad",) for s in layout.segment])
    per_frame = torch.bincount(layout.frame[video]).tolist()
    earlier = np.cumsum([0, *per_frame[:-1]])
    return int(after.sum()) * int(layout.is_vision.sum()), int(sum(n * e for n, e in zip(per_frame, earlier)))


def blocked_count(spec, inputs) -> int:
    hooks = spec.hooks(inputs, layers=ko.layers([0]))
    return int(hooks[0][1].blocked_full(inputs.seq_len, "cpu").sum())


def processor_rows(name: str, root: Path, videos: dict[str, Path], frames: list[int]) -> list[str]:
    spec = realistic_spec(name)
    path = make_realistic(name, root / name, real_tokenizer(spec.vocab))
    model = HookedVideoLLM.from_pretrained(path)
    # Qwen-VL: two frames a temporal group; fixed-size processors resize every frame to probe_size
    groups = getattr(getattr(model.hf_model.config, "vision_config", None), "temporal_patch_size", 1) or 1
    fixed = spec.probe_size[0] == spec.probe_size[1]
    lines, ok = [], True
    for label, video in videos.items():
        for n in frames:
            model.to_inputs(video, QUESTION, n_frames=n)  # warm-up (decoder and processor caches)
            with PeakRSS("cpu") as mem:
                t0 = time.perf_counter()
                inputs = model.to_inputs(video, QUESTION, n_frames=n)
                seconds = time.perf_counter() - t0
            layout = inputs.layout
            per_frame = sorted(set(torch.bincount(layout.frame[layout.is_video]).tolist()))
            published = spec.tokens_per_frame if fixed or SIZES[label.split()[0]] == spec.probe_size else None
            checks = [layout.n_frames == n // groups]
            if published is not None:
                checks.append(per_frame == [published])
            lv, vt = expected_edges(layout)
            checks += [blocked_count(ko.LV(), inputs) == lv, blocked_count(ko.VT(), inputs) == vt]
            ok &= all(checks)
            lines.append(
                f"{name:<40} {label:<16} {n:>3} frames  {seconds:7.2f} s  {mem.extra / 2**20:7.0f} MiB  "
                f"{inputs.seq_len:>6} pos  {'/'.join(map(str, per_frame)):>7} tok/frame"
                f"{f' (published {published})' if published is not None else '':<16}  "
                f"{'ok' if all(checks) else 'FAIL ' + str(checks)}"
            )
            print(lines[-1], flush=True)
    return lines if ok else [*lines, "FAIL"]


def forward_rows(root: Path, video: Path, frames: list[int]) -> list[str]:
    name = "llava-onevision-qwen2-0.5b-ov-hf"
    lm = {k: v for k, v in SHAPES["0.5B"].items() if k in ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_mlp")}
    spec = realistic_spec(name)
    path = make_realistic(name, root / f"{name}-0.5B", real_tokenizer(spec.vocab), **lm)
    model = HookedVideoLLM.from_pretrained(path)
    lines = []
    for n in frames:
        inputs = model.to_inputs(video, QUESTION, n_frames=n)
        hooks = ko.LV().hooks(inputs, layers=ko.all_layers())
        with torch.no_grad():
            model(inputs)  # warm-up
            row = []
            for label, fn in (
                ("clean", lambda: model(inputs)),
                ("LV-K all layers", lambda: model.run_with_hooks(inputs, fwd_hooks=hooks)),
            ):
                with PeakRSS("cpu") as mem:
                    t0 = time.perf_counter()
                    fn()
                    seconds = time.perf_counter() - t0
                row.append(f"{label} {seconds:6.1f} s, {mem.extra / 2**30:5.2f} GiB")
        lines.append(f"0.5B forward {n:>3} frames {inputs.seq_len:>6} pos: " + "; ".join(row))
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", default=list(realistic_specs()))
    ap.add_argument("--frames", nargs="*", type=int, default=[8, 32, 64])
    ap.add_argument("--forward-frames", nargs="*", type=int, default=[8, 32])
    ap.add_argument("--no-long", action="store_true", help="skip the 2-minute video")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "vlens-bench-real")
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(torch.get_num_threads())
    videos = {label: h264(args.root / f"{label}.mp4", h, w, seconds=20) for label, (h, w) in SIZES.items()}
    if not args.no_long:
        videos["640x360 2-min"] = h264(args.root / "640x360-2min.mp4", 360, 640, seconds=120)
    print(f"# {' '.join(sys.argv)}  (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    lines = []
    for name in args.models:
        lines += processor_rows(name, args.root, videos, args.frames)
    if args.forward_frames:
        lines += forward_rows(args.root, videos["640x360"], args.forward_frames)
    if "FAIL" in lines:
        sys.exit(1)


if __name__ == "__main__":
    main()
