"""The hooked decoder's parts, with TransformerLens hook names; none of them asks which family runs.

| room | what it holds |
|---|---|
| `embed` | `Embed` (W_E), `Unembed` (W_U) |
| `norm` | `RMSNorm` with `hook_scale` / `hook_normalized` |
| `rotary` | RoPE and M-RoPE cos/sin tables |
| `attention` | `Attention`: projections, q/k/v/pattern/z hooks, rotary, the backend per layer |
| `attention_mask` | `AttentionContext`: one forward's masks, built once and shared by layers |
| `attention_backends` | how softmax(QKᵀ/√d + M)V is computed: explicit, SDPA, FlexAttention, per frame |
| `attention_chunked` | the query-chunked path for long videos: each chunk's mask on the fly, no [pos, pos] tensor |
| `mlp`, `moe` | the SwiGLU MLP and the sparse mixture of experts |
| `block` | `TransformerBlock`: ln1 → attention → + → ln2 → MLP → + |
| `kv_cache` | `KVCache` for decoding and sweeps |
| `per_call` | what a forward is told to change for one call (`Interventions`, `EdgeRemoval`, `RowPlan`) |
"""
