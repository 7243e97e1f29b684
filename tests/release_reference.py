"""Parity oracles for the releases in their authors' formats, written from the original equations
in plain torch on the raw release state dict (keys as on disk), independent of the converters and
of any HF model class. Batch of one; `blocked` = {layer: bool [pos, pos]} adds −∞ at the knockout
edges before the softmax of those layers (the study's definition)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def load_release(path) -> tuple[dict, dict]:
    path = Path(path)
    state = {}
    for f in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(f)))
    return json.loads((path / "config.json").read_text()), {k: v.float() for k, v in state.items()}


# language models -------------------------------------------------------------------------------------
def _rms(x, w, eps):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)) * w


def _rope(x, theta):
    # x [heads, pos, d]: rotate-half RoPE (Qwen2 / InternLM2 / Llama), positions 0..pos-1
    d, n = x.shape[-1], x.shape[-2]
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    ang = torch.arange(n, dtype=torch.float32)[:, None] * inv[None]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def decoder(x, layers, *, n_heads, n_kv, theta, eps, final_norm, lm_head, blocked=None):
    """A pre-norm RoPE decoder with grouped-query attention and a SwiGLU MLP. `layers` is a list of
    dicts with q, k, v (weight, bias or None), o, ln1, ln2, gate, up, down."""
    N, D = x.shape
    dh = D // n_heads
    causal = torch.ones(N, N, dtype=torch.bool).tril()
    for l, p in enumerate(layers):
        h = _rms(x, p["ln1"], eps)
        q = F.linear(h, p["q"], p.get("bq")).view(N, n_heads, dh).transpose(0, 1)
        k = F.linear(h, p["k"], p.get("bk")).view(N, n_kv, dh).transpose(0, 1)
        v = F.linear(h, p["v"], p.get("bv")).view(N, n_kv, dh).transpose(0, 1)
        q, k = _rope(q, theta), _rope(k, theta)
        k = k.repeat_interleave(n_heads // n_kv, 0)
        v = v.repeat_interleave(n_heads // n_kv, 0)
        allowed = causal.clone()
        if blocked is not None and l in blocked:
            allowed &= ~blocked[l]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        s = s.masked_fill(~allowed, float("-inf"))
        a = (s.softmax(-1) @ v).transpose(0, 1).reshape(N, D)
        x = x + F.linear(a, p["o"])
        h = _rms(x, p["ln2"], eps)
        x = x + F.linear(F.silu(F.linear(h, p["gate"])) * F.linear(h, p["up"]), p["down"])
    return F.linear(_rms(x, final_norm, eps), lm_head)


# LLaVA-Qwen releases (LongVA, LLaVA-NeXT-Video-32B-Qwen) -----------------------------------------
def _vit(px, st, pre, vc, kind):
    """CLIP / SigLIP vision transformer (HF's CLIPVisionModel / SiglipVisionModel equations):
    the list of hidden states (embeddings, then after every layer)."""
    P = vc["patch_size"]
    x = F.conv2d(
        px, st[f"{pre}embeddings.patch_embedding.weight"], st.get(f"{pre}embeddings.patch_embedding.bias"), stride=P
    )
    x = x.flatten(2).transpose(1, 2)
    if kind == "clip":
        cls = st[f"{pre}embeddings.class_embedding"].expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1)
    x = x + st[f"{pre}embeddings.position_embedding.weight"][None]
    eps = vc.get("layer_norm_eps", 1e-5 if kind == "clip" else 1e-6)
    if kind == "clip":
        x = F.layer_norm(x, x.shape[-1:], st[f"{pre}pre_layrnorm.weight"], st[f"{pre}pre_layrnorm.bias"], eps)
    act = (lambda t: t * torch.sigmoid(1.702 * t)) if kind == "clip" else (lambda t: F.gelu(t, approximate="tanh"))
    H = vc["num_attention_heads"]
    hs = [x]
    l = 0
    while f"{pre}encoder.layers.{l}.layer_norm1.weight" in st:
        p = f"{pre}encoder.layers.{l}."
        B, N, C = x.shape
        h = F.layer_norm(x, (C,), st[p + "layer_norm1.weight"], st[p + "layer_norm1.bias"], eps)
        q, k, v = (
            F.linear(h, st[p + f"self_attn.{n}_proj.weight"], st[p + f"self_attn.{n}_proj.bias"])
            .view(B, N, H, C // H)
            .transpose(1, 2)
            for n in "qkv"
        )
        a = ((q @ k.transpose(-1, -2)) / math.sqrt(C // H)).softmax(-1) @ v
        x = x + F.linear(
            a.transpose(1, 2).reshape(B, N, C), st[p + "self_attn.out_proj.weight"], st[p + "self_attn.out_proj.bias"]
        )
        h = F.layer_norm(x, (C,), st[p + "layer_norm2.weight"], st[p + "layer_norm2.bias"], eps)
        x = x + F.linear(
            act(F.linear(h, st[p + "mlp.fc1.weight"], st[p + "mlp.fc1.bias"])),
            st[p + "mlp.fc2.weight"],
            st[p + "mlp.fc2.bias"],
        )
        hs.append(x)
        l += 1
    return hs


def llava_qwen_video_features(path, pixel_values, *, pool_mode, pool_stride, newline):
    """LLaVA's encode_multimodals + get_2dPool + newline handling for one video [T, 3, H, W]."""
    cfg, st = load_release(path)
    vc = json.loads((Path(path) / cfg["mm_vision_tower"] / "config.json").read_text())
    kind = "siglip" if vc["model_type"].startswith("siglip") else "clip"
    hs = _vit(pixel_values.float(), st, "model.vision_tower.vision_tower.vision_model.", vc, kind)
    if kind == "clip":
        x = hs[cfg["mm_vision_select_layer"]][:, 1:]  # select_feature "patch"
    else:
        x = hs[-1]  # the checkpoint's tower already lacks the deleted last layer
    x = F.linear(
        F.gelu(F.linear(x, st["model.mm_projector.0.weight"], st["model.mm_projector.0.bias"])),
        st["model.mm_projector.2.weight"],
        st["model.mm_projector.2.bias"],
    )
    T, n, D = x.shape
    g = math.isqrt(n)
    x = x.view(T, g, g, D).permute(0, 3, 1, 2)
    if pool_mode == "average":
        x = F.avg_pool2d(x, pool_stride)
    elif pool_mode == "max":
        x = F.max_pool2d(x, pool_stride)
    else:
        x = F.interpolate(x, size=[math.ceil(g / pool_stride)] * 2, mode="bilinear")
    x = x.permute(0, 2, 3, 1)  # [T, g', g', D]
    if newline == "grid":  # add_token_per_grid: the newline closes every row of every frame
        nl = st["model.image_newline"]
        x = torch.cat([x, nl.expand(*x.shape[:2], 1, D)], 2)
    return x.reshape(-1, D)


def llava_qwen_logits(path, input_ids, pixel_values, placeholder_id, *, pool_mode, pool_stride, newline, blocked=None):
    cfg, st = load_release(path)
    feats = llava_qwen_video_features(
        path, pixel_values[0], pool_mode=pool_mode, pool_stride=pool_stride, newline=newline
    )
    ids = input_ids[0]
    x = st["model.embed_tokens.weight"][ids].clone()
    slots = ids == placeholder_id
    assert int(slots.sum()) == feats.shape[0], (int(slots.sum()), feats.shape)
    x[slots] = feats
    layers = []
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        layers.append(
            {
                **{n: st[p + f"self_attn.{n}_proj.weight"] for n in "qkvo"},
                **{f"b{n}": st[p + f"self_attn.{n}_proj.bias"] for n in "qkv"},
                "ln1": st[p + "input_layernorm.weight"],
                "ln2": st[p + "post_attention_layernorm.weight"],
                **{n: st[p + f"mlp.{n}_proj.weight"] for n in ("gate", "up", "down")},
            }
        )
    return decoder(
        x,
        layers,
        n_heads=cfg["num_attention_heads"],
        n_kv=cfg["num_key_value_heads"],
        theta=cfg["rope_theta"],
        eps=cfg["rms_norm_eps"],
        final_norm=st["model.norm.weight"],
        lm_head=st["lm_head.weight"],
        blocked=blocked,
    )[None]


# InternVideo2.5 (InternVLChatModel, modeling_internvl_chat_hico2.py) ----------------------------------
def _internvit(px, st, vc):
    """InternViT (modeling_intern_vit.py): patch conv, CLS, position embedding; layers
    x += ls1·attn(norm1 x), x += ls2·mlp(norm2 x); fused qkv; no final norm."""
    P, C, H = vc["patch_size"], vc["hidden_size"], vc["num_attention_heads"]
    x = F.conv2d(
        px,
        st["vision_model.embeddings.patch_embedding.weight"],
        st["vision_model.embeddings.patch_embedding.bias"],
        stride=P,
    )
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([st["vision_model.embeddings.class_embedding"].expand(x.shape[0], 1, C), x], 1)
    x = x + st["vision_model.embeddings.position_embedding"]
    eps = vc["layer_norm_eps"]
    for l in range(vc["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{l}."
        B, N, _ = x.shape
        h = F.layer_norm(x, (C,), st[p + "norm1.weight"], st[p + "norm1.bias"], eps)
        qkv = (
            F.linear(h, st[p + "attn.qkv.weight"], st[p + "attn.qkv.bias"])
            .reshape(B, N, 3, H, C // H)
            .permute(2, 0, 3, 1, 4)
        )
        q, k, v = qkv.unbind(0)
        a = (((q * (C // H) ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v).transpose(1, 2).reshape(B, N, C)
        x = x + F.linear(a, st[p + "attn.proj.weight"], st[p + "attn.proj.bias"]) * st[p + "ls1"]
        h = F.layer_norm(x, (C,), st[p + "norm2.weight"], st[p + "norm2.bias"], eps)
        x = (
            x
            + F.linear(
                F.gelu(F.linear(h, st[p + "mlp.fc1.weight"], st[p + "mlp.fc1.bias"])),
                st[p + "mlp.fc2.weight"],
                st[p + "mlp.fc2.bias"],
            )
            * st[p + "ls2"]
        )
    return x


def _pixel_shuffle_v2(x, s):
    n, w, h, c = x.shape
    x = x.view(n, w, int(h * s), int(c / s)).permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h * s), int(w * s), int(c / (s * s)))
    return x.permute(0, 2, 1, 3).contiguous()


def _tome(x, target, heads):
    """merge_tokens: ToMe rounds (each removes at most half), size-weighted averages."""
    b, p, c = x.shape
    rs, t = [], p
    while t != target:
        if t - target <= t // 2:
            rs.append(t - target)
            break
        rs.append(t // 2)
        t -= t // 2
    size = torch.ones(b, p, 1)
    for r in rs:
        m = x.reshape(b, x.shape[1], heads, c // heads).mean(2)
        m = m / m.norm(dim=-1, keepdim=True)
        A, Bm = m[:, ::2], m[:, 1::2]
        best, best_idx = (A @ Bm.transpose(1, 2)).max(-1)
        order = best.argsort(-1, descending=True)
        out_x, out_s = [], []
        for g in range(b):  # per group, with explicit loops over the merged A tokens
            merged = set(order[g, :r].tolist())
            xs, ss = x[g] * size[g], size[g]
            a_x, b_x, a_s, b_s = xs[::2], xs[1::2].clone(), ss[::2], ss[1::2].clone()
            for i in order[g, :r].tolist():
                b_x[best_idx[g, i]] += a_x[i]
                b_s[best_idx[g, i]] += a_s[i]
            keep = [i for i in order[g].tolist() if i not in merged]  # unmerged A tokens, by score
            nx = torch.cat([a_x[keep], b_x])
            ns = torch.cat([a_s[keep], b_s])
            out_x.append(nx / ns)
            out_s.append(ns)
        x, size = torch.stack(out_x), torch.stack(out_s)
    return x


def internvideo_logits(path, input_ids, pixel_values, ctx_id, *, compress=True, blocked=None):
    cfg, st = load_release(path)
    vc, lc = cfg["vision_config"], cfg["llm_config"]
    x = _internvit(pixel_values.float(), st, vc)[:, 1:]
    g = math.isqrt(x.shape[1])
    x = _pixel_shuffle_v2(x.reshape(x.shape[0], g, g, -1), cfg["downsample_ratio"])
    c = x.shape[-1]
    x = x.reshape(x.shape[0], -1, c)  # [frames, (P/2)², c], row-major
    if compress:  # local_num_frames 4, num_tome_tokens 64 (the release's constants)
        x = _tome(x.reshape(-1, 4 * x.shape[1], c), 64, lc["num_attention_heads"]).reshape(-1, 16, c)
    x = F.layer_norm(x, (c,), st["mlp1.0.weight"], st["mlp1.0.bias"], 1e-5)
    x = F.linear(F.gelu(F.linear(x, st["mlp1.1.weight"], st["mlp1.1.bias"])), st["mlp1.3.weight"], st["mlp1.3.bias"])
    ids = input_ids[0]
    emb = st["language_model.model.tok_embeddings.weight"][ids].clone()
    slots = ids == ctx_id
    assert int(slots.sum()) == x.shape[0] * x.shape[1], (int(slots.sum()), x.shape, ctx_id)
    emb[slots] = x.reshape(-1, x.shape[-1])
    H, KV, D = lc["num_attention_heads"], lc["num_key_value_heads"], lc["hidden_size"]
    dh, G = D // H, H // KV
    layers = []
    for l in range(lc["num_hidden_layers"]):
        p = f"language_model.model.layers.{l}."
        # InternLM2's rearrange "b q (h gs d) -> b q h gs d" on the fused output, expressed on the rows
        w = st[p + "attention.wqkv.weight"].view(KV, G + 2, dh, D)
        layers.append(
            {
                "q": w[:, :G].reshape(-1, D),
                "k": w[:, G].reshape(-1, D),
                "v": w[:, G + 1].reshape(-1, D),
                "o": st[p + "attention.wo.weight"],
                "ln1": st[p + "attention_norm.weight"],
                "ln2": st[p + "ffn_norm.weight"],
                "gate": st[p + "feed_forward.w1.weight"],
                "up": st[p + "feed_forward.w3.weight"],
                "down": st[p + "feed_forward.w2.weight"],
            }
        )
    return decoder(
        emb,
        layers,
        n_heads=H,
        n_kv=KV,
        theta=lc["rope_theta"],
        eps=lc["rms_norm_eps"],
        final_norm=st["language_model.model.norm.weight"],
        lm_head=st["language_model.output.weight"],
        blocked=blocked,
    )[None]
