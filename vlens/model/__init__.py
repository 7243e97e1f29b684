"""The hooked model: `HookedVideoLLM` (`from vlens import HookedVideoLLM`) and what it keeps.

| room | what it holds |
|---|---|
| `hooked_video_llm` | `HookedVideoLLM`: the forward and the TransformerLens surface (hooks, `run_with_cache`) |
| `loading` | `from_pretrained` / `from_hf` and the strict weight sharing with HF |
| `input_builder` | `to_inputs`, `inputs_from_prompts`, `inputs_from_hf`, `to_str_tokens` |
| `generation` | `generate`: greedy decoding with a KV cache, hooks at every step |
| `hf_merge` | the HF model's own placement of image and video features |
| `activation_cache` | TransformerLens' `ActivationCache`, aware of DeepStack additions |
| `cache_memory` | what `run_with_cache` would keep, in bytes, and the budget that refuses too much |
| `mask_memory` | what a forward's dense attention masks would take, refused before it runs when they do not fit |
"""
