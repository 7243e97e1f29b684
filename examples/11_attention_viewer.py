"""The attention viewer: one self-contained HTML page for one clip and question.

    python examples/11_attention_viewer.py [OUT.html]

On the model organism (shipped with vlens, no download): the sampled frames with the attention from
the answer position and from the question over each frame's patches, per layer and head (sliders);
LV-K and VT-K in all layers compared with the clean run. Open the file in any browser, offline.
For a `vlens run` directory: `python -m vlens.viewer.view RUN_DIR` (docs/viewer.md).
"""

import sys

import torch

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.data import load_dataset
from vlens.inputs.prompts import mc_question
from vlens.organism import checkpoint_dir
from vlens.viewer.maps import attention_maps
from vlens.viewer.view import view_attention

out = sys.argv[1] if len(sys.argv) > 1 else "vlens-view-organism.html"
torch.set_grad_enabled(False)
model = HookedVideoLLM.from_pretrained(checkpoint_dir())
sample = load_dataset("synthetic:1,n=1,frames=8")[0]
inputs = model.to_inputs(sample.video, mc_question(sample.question, sample.options), n_frames=8, fps=sample.fps)

# The numbers behind the page: [query, layer, head + mean, frame, row, col] and per-frame shares.
maps = attention_maps(model, inputs)
share = maps.mass[0, :, -1].sum(-1)  # answer position → all frames, mean over heads, per layer
print("answer→video share per layer:", [f"{s:.2f}" for s in share])

path = view_attention(
    model,
    inputs,
    path=out,
    knockouts={
        "LV-K all layers": ko.LV().hooks(inputs, layers=ko.all_layers()),
        "VT-K all layers": ko.VT().hooks(inputs, layers=ko.all_layers()),
    },
)
print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB): open it in a browser")
