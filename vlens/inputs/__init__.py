"""Inputs: from a video and a question to the model's tensors and the meaning of every position.

| room | what it holds |
|---|---|
| `sampling` | which frames to take (`sample_indices`, the policies), `SampledVideo`, `VideoError` |
| `video` | reading files (decord, PyAV), frame folders and arrays; `load_video`, `write_video` |
| `prompts` | multiple-choice prompts and the token ids of the option letters |
| `video_inputs` | `VideoInputs`: the HF model's kwargs for a batch plus one layout per row |
| `layout` | `VideoLayout`: segment, frame, row and column of every position |
| `media_layout` | layouts of rows that mix images and videos, from token ids alone |
| `roles` | text roles (question, options, answer prompt, `last`) on a layout |
| `positions` | position selectors (segments, roles, options) for `ko.Edges` |
"""
