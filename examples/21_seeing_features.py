"""Seeing a feature: a colour direction of the organism, over the frames and patches of its top clips.

python examples/21_seeing_features.py [N_SAMPLES] [OUT_DIR] [COLOUR]

Caches `blocks.3.hook_resid_post` at the video patches and the last position over held-out
synthetic clips (`vlens cache-activations`), then builds one direction per colour from the store:
the mean of the patches that show an object of that colour (a pixel of the clip's frame in the
patch is not background) minus the mean of every video patch (difference of means, unit length),
held as a small SAE (`vlens.features.sae.SAE`): b_dec the mean of every video patch, W_enc the
directions, ReLU, so feature c is how far a patch lies beyond the mean patch along colour c. Prints, for COLOUR (default red), its top clips over the
video patches with the frame where they peak, its density over the patches and the logit lens of
the direction, and writes feature.png: the top clips' frames under the feature's activation at
each patch. Rerunning resumes the cache.
"""

import sys
import tempfile
import time
from pathlib import Path

import torch

from vlens import HookedVideoLLM
from vlens.cli import main
from vlens.data import load_dataset
from vlens.data.synthetic import BACKGROUND, COLORS
from vlens.features.feature_views import feature_views
from vlens.features.sae import SAE, SAEConfig
from vlens.features.store import ActivationStore
from vlens.figures.features import plot_feature
from vlens.organism import checkpoint_dir

n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="vlens-features-"))
colour = sys.argv[3] if len(sys.argv) > 3 else "red"
hook, data = "blocks.3.hook_resid_post", f"synthetic:1,n={n}"
store_dir = out / "acts"

t0 = time.perf_counter()
argv = ["cache-activations", "--model", str(checkpoint_dir()), "--data", data, "--frames", "8"]
argv += ["--hooks", hook, "--positions", "video,last", "--out", str(store_dir), "--quiet"]
print("vlens " + " ".join(argv))
if main(argv) != 0:
    sys.exit(1)
t1 = time.perf_counter()

model = HookedVideoLLM.from_pretrained(checkpoint_dir())
store = ActivationStore(store_dir, model=model)
rows = store.all(hook)
samples = load_dataset(data)
colours = list(COLORS)


def on_object(s: int) -> torch.Tensor:
    """[rows] the stored rows of sample s whose patch shows the object (a pixel not background)."""
    frames = torch.as_tensor(samples[s].video)  # [8, 32, 32, 3]: the clip's frames, all of them seen
    grid_r, grid_c = store.samples[s]["layout"]["grid"]
    ph, pw = frames.shape[1] // grid_r, frames.shape[2] // grid_c
    cells = (frames != BACKGROUND).any(-1).unflatten(1, (grid_r, ph)).unflatten(3, (grid_c, pw)).any(4).any(2)
    mine = (rows.sample == s) & (rows.row >= 0)
    hit = torch.zeros_like(mine)
    hit[mine] = cells[rows.frame[mine], rows.row[mine], rows.col[mine]]
    return hit


per_colour: dict[str, list[torch.Tensor]] = {c: [] for c in colours}
for s, rec in enumerate(store.samples):  # the object's patches of every clip with one coloured object
    c = rec["labels"].get("color")
    if c is not None and store.samples[s]["sample"] == samples[s].id:
        per_colour[c].append(rows.acts[on_object(s)])
means = {c: torch.cat(v).mean(0) for c, v in per_colour.items()}
overall = rows.acts[rows.segment_mask("video")].mean(0)  # every patch: mostly background
directions = torch.stack([means[c] - overall for c in colours])
directions = directions / directions.norm(dim=1, keepdim=True)
# as an SAE: subtract the mean clip (b_dec), read each colour's direction (W_enc), ReLU
weights = {
    "W_enc": directions.T.contiguous(),
    "b_enc": torch.zeros(len(colours)),
    "W_dec": directions,
    "b_dec": overall,
}
sae = SAE(SAEConfig(d_in=model.cfg.d_model, d_sae=len(colours), hook_name=hook), weights)

(view,) = feature_views(store, sae, colours.index(colour), group="video", k=4, model=model, samples=samples)
t2 = time.perf_counter()
print(
    f"\nfeature {view.feature} = the {colour!r} direction at {hook} ({len(per_colour[colour])} {colour} clips of {n})"
)
print(f"density: > 0 at {view.n_active:,} of {view.n_rows:,} stored video patches ({view.density:.1%})")
print("top clips (peak activation, where):")
for t in view.top:
    where = f"frame {t.frame}" if t.frame >= 0 else f"position {t.position} (not video)"
    print(f"  {t.id:>16}  colour {t.labels.get('color', '-'):>7}  peak {t.activation:7.2f} at {where}")
assert view.lens is not None
print(f"logit lens ({view.lens.norm}):")
print("  promotes  " + ", ".join(f"{tok!r} {v:.2f}" for tok, v in zip(view.lens.top_tokens, view.lens.top_logits)))
print(
    "  suppresses " + ", ".join(f"{tok!r} {v:.2f}" for tok, v in zip(view.lens.bottom_tokens, view.lens.bottom_logits))
)
figure = plot_feature(view, out / "feature.png")
print(f"\ncache {t1 - t0:.0f} s, view {t2 - t1:.1f} s; figure: {figure}")
