"""What the families that write frame times into the prompt share (Qwen3-VL, GLM-4.1V,
VideoLLaMA3): the sampled frames' metadata their processors write the times from, and the
timestamp text tokenized once, so a layout can check the prompt token by token."""

from __future__ import annotations

from collections.abc import Sequence


def video_metadata(videos: Sequence, title: str, *, unit: str = "frame group's", hf_default: str = "") -> dict:
    """The processor kwarg `video_metadata` for sampled videos: every video's real frame
    indices and frame rate (the processor writes each frame's time as index / fps).

    Args:
        videos: `SampledVideo`s, one per batch row.
        title: the family's name, for the error.
        unit: what gets a timestamp ("frame's", "frame group's").
        hf_default: what the processor assumes without metadata (named in the error).

    Raises:
        ValueError: a video without a frame rate (frames given as arrays without `fps=`), where
            the processor would silently write times from its own default rate.
    """
    meta = []
    for v in videos:
        if v.fps is None:
            assumed = f" (its processor would assume {hf_default})" if hf_default else ""
            raise ValueError(
                f"{title} writes every {unit} timestamp into the prompt, and these frames have none{assumed}: "
                "pass fps= (the clip's frame rate) to to_inputs, or give a video file"
            )
        meta.append({"total_num_frames": max(v.indices) + 1, "fps": float(v.fps), "frames_indices": list(v.indices)})
    return {"video_metadata": meta}


def text_ids(memo: dict, tokenizer, text: str) -> tuple[int, ...]:
    """`text`'s token ids without special tokens, memoised in `memo` (a family adapter's own
    dict: a layout looks up the same few timestamps for every row)."""
    if text not in memo:
        memo[text] = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
    return memo[text]
