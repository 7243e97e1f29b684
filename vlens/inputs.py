"""VideoInputs: the HF model's kwargs for a batch, plus the layout of every row.

It *is* a dict of exactly what the checkpoint's processor returned, so `hf_model(**inputs)` runs
the HF model on the same tensors as `model(inputs)`; the extra attributes say what each position
is (`layouts`), which frames were sampled (`videos`) and the prompt text (`prompts`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlens.layout import VideoLayout
from vlens.video import SampledVideo


class VideoInputs(dict):
    """The HF model's kwargs for a batch (a dict), plus what each position and row is.

    Built by `model.to_inputs`. `hf_model(**inputs)` runs the HF model on the same tensors.

    Args:
        tensors: what the checkpoint's processor returned (`input_ids` `[batch, pos]`,
            `attention_mask`, pixel values, …).
        layouts: one `VideoLayout` per row.
        videos: the `SampledVideo` of each row (None for a row without video).
        prompts: the templated prompt text of each row.

    Raises:
        ValueError: the number of layouts differs from the batch size.
    """

    def __init__(
        self,
        tensors: dict,
        layouts: Sequence[VideoLayout],
        videos: Sequence[SampledVideo | None] = (),
        prompts: Sequence[str] = (),
    ):
        super().__init__(tensors)
        self.layouts: list[VideoLayout] = list(layouts)
        self.videos = list(videos)
        self.prompts = list(prompts)
        n = self["input_ids"].shape[0]
        if len(self.layouts) != n:
            raise ValueError(f"{len(self.layouts)} layouts for a batch of {n} rows; give one layout per row")

    @property
    def layout(self) -> VideoLayout:
        """The layout of a batch of one (use `.layouts[i]` for row i of a batch)."""
        if len(self.layouts) != 1:
            raise ValueError(
                f"inputs.layout is for a batch of one, this batch has {len(self.layouts)} rows: "
                "use inputs.layouts[i]"
            )
        return self.layouts[0]

    @property
    def batch_size(self) -> int:
        """Rows in the batch."""
        return int(self["input_ids"].shape[0])

    @property
    def shape(self) -> torch.Size:
        """[batch, pos] of input_ids: lets TransformerLens tools that read `tokens.shape`
        (e.g. transformer_lens.patching) take VideoInputs where they take tokens."""
        return self["input_ids"].shape

    @property
    def seq_len(self) -> int:
        """Positions per row (after padding)."""
        return int(self["input_ids"].shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> VideoInputs:
        """Move tensors to `device`; cast floating tensors (pixel values) to `dtype`.

        Args:
            device: target device (None: stay).
            dtype: dtype for floating tensors (None: keep); integer tensors are never cast.

        Returns:
            New `VideoInputs` with the same layouts, videos and prompts.
        """
        moved = {}
        for k, v in self.items():
            if isinstance(v, torch.Tensor):
                v = v.to(device) if device is not None else v
                if dtype is not None and v.is_floating_point():
                    v = v.to(dtype)
            moved[k] = v
        return VideoInputs(moved, self.layouts, self.videos, self.prompts)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in self.items() if isinstance(v, torch.Tensor))
        return f"VideoInputs({shapes}; layouts={self.layouts})"
