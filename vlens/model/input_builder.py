"""Inputs for the model: frames sampled, the chat prompt built and the checkpoint's own HF
processor run (`to_inputs`), already-templated prompts (`inputs_from_prompts`) or your own HF
tensors (`inputs_from_hf`), each with one `VideoLayout` per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from vlens.config import HookedVideoLLMConfig
from vlens.families import Family
from vlens.inputs.sampling import SampledVideo, Sampling
from vlens.inputs.video import load_video
from vlens.inputs.video_inputs import (
    VideoInputs,
    as_frames,
    check_hf_kwargs,
    load_images,
    with_media,
)


class InputBuilder:
    """`to_inputs`, `inputs_from_prompts`, `inputs_from_hf`, `to_str_tokens` (a mixin of HookedVideoLLM)."""

    # set by HookedVideoLLM.__init__ (declared here for the type checker)
    cfg: HookedVideoLLMConfig
    family: Family
    processor: Any
    hf_model: nn.Module

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    def to_inputs(
        self,
        video: Any,
        question: str | Sequence[str],
        *,
        n_frames: int = 32,
        start: float | None = None,
        end: float | None = None,
        fps: float | None = None,
        allow_repeat: bool = False,
        system_prompt: str | None = None,
        sampling: Sampling | None = None,
        images: Any = None,
    ) -> VideoInputs:
        """Sample frames, build the chat prompt and run the checkpoint's own processor.

        One sample: `to_inputs(video, "question")`. A batch: lists of videos and questions (rows
        are left-padded; every row's answer position is the last).

        Args:
            video: a file path, a folder of frames, a list of HxWx3 uint8 frames or a uint8
                [T,H,W,3] array/tensor (a list of those for a batch).
            question: the user's text (a list for a batch).
            n_frames: frames to sample (see `vlens.inputs.video.load_video`).
            start: window start in seconds.
            end: window end in seconds.
            fps: frame rate of a folder or array.
            allow_repeat: allow clips shorter than `n_frames`.
            system_prompt: a system message (the template's default when None).
            sampling: "centres" | "linspace" | "fps" (vlens.inputs.video); None takes the checkpoint
                family's default (its authors' policy for the released formats, else "centres").
            images: still images shown before the video in the user turn: one image (a PIL
                image, an HxWx3 uint8 array or an image file path) or a list of them; for a batch,
                one such list per row. `video` may then be None (images only).

        Returns:
            `VideoInputs`: the processor's tensors plus one layout per row.

        Raises:
            ValueError: no processor, an empty batch, or videos and questions that do not pair up.
            VideoError: a bad sampling argument or an unreadable video.
        """
        if self.processor is None:
            raise ValueError("this model has no processor; pass one to HookedVideoLLM.from_hf(hf_model, processor)")
        if isinstance(question, str):
            videos, questions = [video], [question]
        else:
            if not isinstance(question, Sequence):
                raise TypeError(f"question must be a str or a list of str, got {type(question).__name__}")
            questions = list(question)
            if not questions:
                raise ValueError("an empty batch: give at least one question (and one video per question)")
            if video is None:  # images only
                video = [None] * len(questions)
            if not isinstance(video, (list, tuple)) or len(video) != len(questions):
                raise ValueError(
                    f"a batch needs one video per question: got {len(questions)} questions and "
                    f"{len(video) if isinstance(video, (list, tuple)) else 'a single'} video(s)"
                )
            bad = [i for i, q in enumerate(questions) if not isinstance(q, str)]
            if bad:
                raise TypeError(f"every question must be a str; row(s) {bad} are not")
            videos = list(video)
        policy: Sampling = getattr(self.family, "default_sampling", "centres") if sampling is None else sampling
        row_images = load_images(images, len(questions))
        sampled = [
            None
            if v is None
            else load_video(v, n_frames, start=start, end=end, fps=fps, allow_repeat=allow_repeat, sampling=policy)
            for v in videos
        ]
        if all(v is None for v in sampled) and not any(row_images):
            raise ValueError("nothing to show the model: pass a video, images=, or both")
        prompts = [
            self.processor.apply_chat_template(
                with_media(self.family.messages(q, system_prompt), len(ims), video=v is not None),
                add_generation_prompt=True,
                tokenize=False,
            )
            for q, v, ims in zip(questions, sampled, row_images)
        ]
        return self.inputs_from_prompts(prompts, sampled, row_images if any(row_images) else None)

    def mc_inputs(
        self,
        video: Any,
        question: str | Sequence[str],
        options: Sequence[str] | Sequence[Sequence[str] | None] | None,
        *,
        answer: str | int | Sequence[str | int | None] | None = None,
        system_prompt: str | None = None,
        **to_inputs_kwargs: Any,
    ) -> VideoInputs:
        """A multiple-choice input with its text roles in one call: the user turn written by
        `vlens.inputs.prompts.mc_question`, `to_inputs`, then `vlens.inputs.roles.with_roles`
        (question, each option with its letter, the answer prompt, the answer's option marked).

        One sample: `mc_inputs(video, "Which way?", ["left", "right"], answer="B")`. A batch: lists
        of videos and questions, one option list (or None: a plain question) and answer per row.

        Args:
            video: what `to_inputs` takes (a list for a batch).
            question: the question text (a list for a batch).
            options: the option texts (one list per row for a batch; None for a plain question).
            answer: the correct letter or index (one per row for a batch), or None.
            system_prompt: a system message (the template's default when None).
            **to_inputs_kwargs: n_frames, fps, sampling, images, … as `to_inputs` takes them.

        Returns:
            `VideoInputs` whose layouts carry the roles; score them with `answer_letter_ids`.

        Raises:
            ValueError: a batch whose questions, option lists and answers do not pair up, or 2–10
                options not given.
        """
        from vlens.inputs.prompts import mc_question
        from vlens.inputs.roles import with_roles

        def text(q: str, opts) -> str:
            return q if opts is None else mc_question(q, opts)

        if isinstance(question, str):
            if options is not None and (isinstance(options, str) or not all(isinstance(o, str) for o in options)):
                raise ValueError("options of one question must be a list of option texts (str)")
            prompts: str | list[str] = text(question, options)
        else:
            questions = list(question)
            per_row = [None] * len(questions) if options is None else list(options)
            if len(per_row) != len(questions):
                raise ValueError(
                    f"a batch of {len(questions)} questions needs {len(questions)} option lists, got {len(per_row)}"
                )
            prompts = [text(q, o) for q, o in zip(questions, per_row)]
            options = per_row  # type: ignore[assignment]
        inputs = self.to_inputs(video, prompts, system_prompt=system_prompt, **to_inputs_kwargs)
        return with_roles(self, inputs, question, options, answer, system_prompt=system_prompt)

    def answer_letter_ids(self, n: int, *, system_prompt: str | None = None) -> list[int]:
        """Token ids of the first `n` option letters as this checkpoint writes them after its own
        generation prompt (`vlens.inputs.prompts.reply_letter_ids`): the chat template renders a
        reply of each letter and the first token after the prompt is taken. The ids to score
        `to_inputs` prompts with (Vicuna-style templates: "▁A", not "A").

        Args:
            n: number of options (2–10).
            system_prompt: the system message the inputs were built with (None: the template's).

        Raises:
            LetterReadoutError: a letter is not one token after the generation prompt.
        """
        from vlens.inputs.prompts import LETTERS, reply_letter_ids

        if self.processor is None:
            raise ValueError("this model has no processor; pass one to HookedVideoLLM.from_hf(hf_model, processor)")
        if not isinstance(n, int) or isinstance(n, bool) or not 2 <= n <= len(LETTERS):
            raise ValueError(f"n (the number of options) must be an int in 2..{len(LETTERS)}, got {n!r}")
        cached = self._letter_ids_cache.get((n, system_prompt)) if hasattr(self, "_letter_ids_cache") else None
        if cached is not None:
            return list(cached)
        messages = with_media(self.family.messages("?", system_prompt), 0, video=True)

        def render(msgs, generation_prompt: bool) -> str:
            return self.processor.apply_chat_template(msgs, add_generation_prompt=generation_prompt, tokenize=False)

        prompt = render(messages, True)
        replies = [
            render([*messages, {"role": "assistant", "content": [{"type": "text", "text": letter}]}], False)
            for letter in LETTERS[:n]
        ]
        ids = reply_letter_ids(self.tokenizer, prompt, replies)
        if not hasattr(self, "_letter_ids_cache"):
            self._letter_ids_cache = {}
        self._letter_ids_cache[(n, system_prompt)] = tuple(ids)
        return ids

    def inputs_from_prompts(
        self,
        prompts: Sequence[str],
        videos: Sequence[SampledVideo | None],
        images: Sequence[Sequence[Any]] | None = None,
    ) -> VideoInputs:
        """Processor call for already-templated prompts, sampled videos and (optionally) images,
        plus one layout per row.

        Args:
            prompts: one templated prompt per row (its placeholders say where media go).
            videos: one `SampledVideo` (or None: no video) per row.
            images: per row, the images of that row in prompt order (PIL images or HxWx3 uint8
                arrays); None for no images.

        Returns:
            `VideoInputs` on the model's device and dtype.
        """
        rows = len(prompts)
        if rows == 0:
            raise ValueError("an empty batch: give at least one prompt")
        if len(videos) != rows or (images is not None and len(images) != rows):
            raise ValueError(
                f"{rows} prompts need one entry per row in videos (got {len(videos)})"
                + ("" if images is None else f" and images (got {len(images)})")
            )
        present = [v for v in videos if v is not None]
        frame_counts = {len(v) for v in present}
        if len(frame_counts) > 1 and not getattr(self.family, "per_row_frame_counts", False):
            raise ValueError(
                f"the videos of a batch have different frame counts {sorted(frame_counts)}; {self.family.name} stacks "
                "every row's frames into one tensor: sample the same n_frames for every row"
            )
        if present and len(present) != rows:
            raise ValueError(
                "every row of a batch needs a video, or none does (rows without video: "
                f"{[i for i, v in enumerate(videos) if v is None]})"
            )
        flat_images = [im for row in (images or []) for im in row]
        call: dict[str, Any] = {"text": list(prompts), "return_tensors": "pt", "padding": True}
        if present:
            call.update(
                videos=[v.frames for v in present], do_sample_frames=False, **self.family.processor_kwargs(present)
            )
        if flat_images:
            # one list per row: processors that tile single images (OneVision's batch_num_images)
            # count images per row from this nesting
            assert images is not None  # flat_images came from it
            call["images"] = [list(r) for r in images] if all(images) else flat_images
        tensors = dict(self.processor(**call))
        return self._with_layouts(tensors, list(videos), list(prompts)).to(self.cfg.device, self.cfg.dtype)

    def inputs_from_hf(self, kwargs: Mapping[str, Any], *, images_as_frames: bool = False) -> VideoInputs:
        """`VideoInputs` (one layout per row) from HF model kwargs you built yourself — your own
        preprocessing, HF's test inputs — with no processor: the layouts come from `input_ids`,
        `attention_mask`, the grids/sizes and the checkpoint config's token ids.

        `model(inputs)` then equals `hf_model(**kwargs)` (the vision features are placed by HF's
        own code); kwargs the family's HF model takes but vlens does not run exactly are refused.

        Args:
            kwargs: the HF model's keyword arguments: `input_ids` [batch, pos] and what the family
                takes (`attention_mask`, `pixel_values`, `pixel_values_videos`, `image_sizes`,
                `image_grid_thw`, `video_grid_thw`, `second_per_grid_ts`, `mm_token_type_ids`, ...).
            images_as_frames: lay out each row's images as the frames of one video (image k is
                frame k). For InternVL, whose frames are images to the model (only the processor's
                "FrameN:" text tells them apart, which raw kwargs need not carry).

        Returns:
            `VideoInputs` holding the same tensors (moved to the model's device; floating ones
            cast to its dtype).

        Raises:
            TypeError: kwargs is not a mapping of tensors with `input_ids`.
            ValueError: a kwarg vlens cannot run exactly (named), or a missing field.
            LayoutError: the tokens do not have the structure the family's rules predict (the
                message names the missing token or field).
        """
        tensors = check_hf_kwargs(self.family, kwargs)
        ids = tensors["input_ids"]
        inputs = self._with_layouts(tensors, [None] * ids.shape[0], [])
        if images_as_frames:
            inputs.layouts = [as_frames(l) for l in inputs.layouts]
        return inputs.to(self.cfg.device, self.cfg.dtype)

    def _with_layouts(self, tensors: dict, videos: list, prompts: list) -> VideoInputs:
        from vlens.inputs.media_layout import layouts_for

        return VideoInputs(tensors, layouts_for(self.family, self.hf_model.config, tensors, videos), videos, prompts)

    def to_str_tokens(self, inputs: VideoInputs, row: int = 0, roles: bool = False) -> list[str]:
        """A label per position: token text, `<f3 r2 c5>` for video positions, `<i0 r1 c2>` for
        image positions, `<sep>`, `<pad>`; with `roles=True` text positions carry their role
        (`What|question`, `B|option B*`; see vlens.inputs.roles)."""
        ids = inputs["input_ids"][row].tolist()
        tokens = self.tokenizer.convert_ids_to_tokens(ids) if self.processor is not None else None
        return inputs.layouts[row].labels(tokens, roles=roles)

    def _as_inputs(self, inputs: VideoInputs | dict | Tensor) -> dict:
        if isinstance(inputs, Tensor):  # text-only tokens
            return {"input_ids": inputs}
        if not isinstance(inputs, dict) or "input_ids" not in inputs:
            raise TypeError("pass the VideoInputs from model.to_inputs(...) (or a dict with input_ids)")
        return inputs
