"""What the viewer's page shows, as JSON-able data: frames as PNG data URIs, attention maps,
knockout and patching results; and the page rendered with it.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from vlens.viewer.maps import AttentionMaps, ViewError

if TYPE_CHECKING:
    from vlens.experiments.analysis import PatchingSummary


QUERY_NOTES = {
    "answer": "from the answer position (the last one, whose logits give the answer)",
    "question": "mean over the question's positions after the video (the answer position excluded)",
}


def _png_uri(frame: np.ndarray, max_px: int) -> str:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    scale = max_px / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def frame_images(inputs, layout, row: int, frames, n_groups: int, max_px: int) -> tuple[list[dict], tuple[int, int]]:
    """One picture per frame (temporal group: its first frame) with a label; size in CSS px."""
    if frames is None and row < len(inputs.videos) and inputs.videos[row] is not None:
        frames = inputs.videos[row].frames
    fpg = layout.frames_per_group
    times = layout.frame_times
    out, size = [], (160, 160)
    if frames is not None:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < n_groups * fpg:
            raise ViewError(
                f"frames must be [T, H, W, 3] uint8 with T ≥ {n_groups * fpg} (the frames these inputs "
                f"were built from); got shape {tuple(frames.shape)}"
            )
        h, w = frames.shape[1:3]
        k = 160 / max(h, w)
        size = (round(w * k), round(h * k))
    for g in range(n_groups):
        label = f"frame {g}" if fpg == 1 else f"frames {g * fpg}–{g * fpg + fpg - 1}"
        if times is not None and g * fpg < len(times):
            label += f" · {times[g * fpg]:.1f}s"
        out.append({"src": _png_uri(frames[g * fpg], max_px) if frames is not None else "", "label": label})
    return out, size


@torch.no_grad()
def knockout_rows(model, inputs, knockouts: Mapping[str, Sequence], row: int) -> dict:
    """Clean vs each knockout on this one input: top token, p(clean top token), KL over the vocab."""

    def last_logprobs(hooks):
        logits = model.run_with_hooks(inputs, fwd_hooks=list(hooks), logits_to_keep=1)
        return logits[row, -1].float().log_softmax(-1)

    clean = last_logprobs([])
    top = int(clean.argmax())
    tok = model.tokenizer.convert_ids_to_tokens([top])[0]
    rows = [{"cells": ["clean", repr(tok), f"{clean[top].exp():.3f}", "0"], "bar": float(clean[top].exp())}]
    for name, hooks in knockouts.items():
        lp = last_logprobs(hooks)
        new_top = model.tokenizer.convert_ids_to_tokens([int(lp.argmax())])[0]
        kl = float((clean.exp() * (clean - lp)).sum())
        rows.append({"cells": [name, repr(new_top), f"{lp[top].exp():.3f}", f"{kl:.4f}"], "bar": float(lp[top].exp())})
    return {
        "columns": ["configuration", "top next token", f"p({tok!r})", "KL(clean‖knocked)"],
        "rows": rows,
        "note": f"This input only: the next-token distribution at the answer position, clean and under each "
        f"knockout; p({tok!r}) is the probability of the clean run's top token (bar).",
    }


def patching_list(patching: Mapping[str, PatchingSummary | Mapping] | None) -> list[dict]:
    out = []
    for name, agg in (patching or {}).items():
        effect = torch.as_tensor(agg["effect"]).float()
        out.append(
            {
                "name": name,
                "layers": [int(x) for x in agg["layers"]],
                "groups": list(agg["groups"]),
                "n": int(agg.get("n", 1)),
                "effect": [[None if math.isnan(v) else round(v, 4) for v in r] for r in effect.tolist()],
            }
        )
    return out


def page_data(
    maps: AttentionMaps,
    frames: list[dict],
    frame_px: tuple[int, int],
    heads: int,
    *,
    title: str,
    subtitle: str = "",
    knockouts: dict | None = None,
    patching: list[dict] | None = None,
) -> dict:
    """The JSON document the page draws from (the format is described in `vlens.viewer.page`).

    Args:
        maps: from `attention_maps`.
        frames: `[{src, label}]`, one per frame of `maps`.
        frame_px: `(width, height)` of a frame on the page, in CSS pixels.
        heads: number of attention heads (the head axis of `maps` has `heads + 1` entries).
        title: page title; subtitle: one line under it.
        knockouts: `{columns, rows: [{cells, bar}], note}` or None.
        patching: `[{name, layers, groups, effect, n}]` or None.

    Returns:
        A JSON-serialisable dict.
    """
    scale = maps.maps.reshape(*maps.maps.shape[:3], -1).max(-1)  # [query, layer, head]
    q8 = np.rint(255 * maps.maps / np.maximum(scale, 1e-12)[..., None, None, None]).astype(np.uint8)
    return {
        "title": title,
        "subtitle": subtitle,
        "frames": frames,
        "frame_px": list(frame_px),
        "grid": list(maps.maps.shape[-2:]),
        "layers": maps.layers,
        "heads": list(range(heads)),
        "queries": list(maps.queries),
        "query_notes": [QUERY_NOTES[q] for q in maps.queries],
        "maps": base64.b64encode(q8.tobytes()).decode(),
        "scale": scale.astype(float).tolist(),
        "mass": np.round(maps.mass.astype(float), 5).tolist(),
        "knockouts": knockouts,
        "patching": patching or [],
    }


def render_html(data: dict) -> str:
    """The self-contained page for `data`: one string of HTML.

    Args:
        data: from `page_data`.

    Returns:
        The HTML, with the data as a JSON script element (`</` escaped so no label can end it).
    """
    from html import escape

    from vlens.viewer.page import PAGE

    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")  # a "</script>" in a label stays text
    return PAGE.replace("__TITLE__", escape(data["title"])).replace("__DATA__", payload)
