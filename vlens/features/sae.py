"""Sparse autoencoders in the two on-disk formats published SAEs use, without their libraries.

sae-lens cannot be imported beside vlens (its releases pin TransformerLens < 4 and import
`transformer_lens.HookedTransformer`, which TransformerLens 4 removed), so vlens reads and writes
its format itself; EleutherAI sparsify's format is read too. The arithmetic is theirs:

- sae-lens (`cfg.json` + `sae_weights.safetensors`; W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in],
  b_dec, JumpReLU's `threshold`): x' = x − b_dec (when `apply_b_dec_to_input`), pre = x' W_enc +
  b_enc, then "standard": ReLU(pre); "topk": the k largest of pre, ReLU'd, others 0; "jumprelu":
  ReLU(pre) where pre > threshold. Reconstruction: f W_dec + b_dec.
- sparsify (`cfg.json` with `d_in`, `k`, + `sae.safetensors`; encoder.weight [d_sae, d_in],
  encoder.bias, W_dec [d_sae, d_in], b_dec, optional W_skip): pre = ReLU(encoder(x − b_dec)), the
  k largest kept: the same TopK as sae-lens's, so it loads as one.

Settings that change the arithmetic and are not implemented (activation normalisation other than
"none", hook_z reshaping, decoder-norm rescaling, BatchTopK's batch-level selection at inference)
are refused by name rather than ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

ARCHITECTURES = ("standard", "topk", "jumprelu")
SAE_LENS_WEIGHTS, SAE_LENS_CFG = "sae_weights.safetensors", "cfg.json"
SPARSIFY_WEIGHTS = "sae.safetensors"


class SAEError(ValueError):
    """An SAE file or setting vlens cannot use as it is, or an SAE that does not fit a hook."""


@dataclass(frozen=True)
class SAEConfig:
    """What an SAE is: its widths, its activation and where it was trained.

    Attributes:
        d_in: width of the activation it reads.
        d_sae: number of features.
        architecture: "standard" (ReLU), "topk" or "jumprelu".
        k: features kept per token (topk).
        apply_b_dec_to_input: subtract b_dec before encoding.
        hook_name: the TransformerLens hook it was trained on (None when the file does not say).
        model_name: the model it was trained on, as the file states it.
    """

    d_in: int
    d_sae: int
    architecture: str = "standard"
    k: int | None = None
    apply_b_dec_to_input: bool = True
    hook_name: str | None = None
    model_name: str | None = None


class SAE(nn.Module):
    """An SAE's weights and its encode / decode, as sae-lens and sparsify compute them."""

    # buffers registered in __init__ (threshold: jumprelu only), declared for the type checker
    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor
    threshold: Tensor

    def __init__(self, cfg: SAEConfig, weights: dict[str, Tensor]):
        super().__init__()
        if cfg.architecture not in ARCHITECTURES:
            raise SAEError(f"architecture {cfg.architecture!r} is not supported; vlens reads {list(ARCHITECTURES)}")
        if cfg.architecture == "topk" and not (isinstance(cfg.k, int) and 0 < cfg.k <= cfg.d_sae):
            raise SAEError(f"a topk SAE needs k in 1..d_sae={cfg.d_sae}, got {cfg.k!r}")
        shapes = {
            "W_enc": (cfg.d_in, cfg.d_sae),
            "b_enc": (cfg.d_sae,),
            "W_dec": (cfg.d_sae, cfg.d_in),
            "b_dec": (cfg.d_in,),
        }
        if cfg.architecture == "jumprelu":
            shapes["threshold"] = (cfg.d_sae,)
        for name, shape in shapes.items():
            if name not in weights:
                raise SAEError(f"the SAE's weights have no {name!r} (have {sorted(weights)})")
            if tuple(weights[name].shape) != shape:
                raise SAEError(
                    f"{name} is {tuple(weights[name].shape)}, expected {shape} for d_in={cfg.d_in}, d_sae={cfg.d_sae}"
                )
        self.cfg = cfg
        for name in shapes:
            self.register_buffer(name, weights[name].detach().clone())
        self.W_skip: Tensor | None = weights.get("W_skip")

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Feature activations of `x`."""
        x = x.to(self.W_enc.dtype)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc
        if self.cfg.architecture == "standard":
            return torch.relu(pre)
        if self.cfg.architecture == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold)
        top = pre.topk(self.cfg.k, dim=-1)  # type: ignore[arg-type]
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def decode(self, features: Float[Tensor, "... d_sae"], x: Tensor | None = None) -> Float[Tensor, "... d_in"]:
        """The reconstruction from feature activations (`x`: the input, for a skip connection)."""
        out = features @ self.W_dec + self.b_dec
        if self.W_skip is not None:
            if x is None:
                raise SAEError("this SAE has a skip connection (W_skip): decode needs the input x")
            out = out + x.to(out.dtype) @ self.W_skip.mT
        return out

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        """The reconstruction of `x`."""
        return self.decode(self.encode(x), x)


def _refuse(cfg: dict, key: str, allowed, what: str) -> None:
    if key in cfg and cfg[key] not in allowed:
        raise SAEError(
            f"{what} {key}={cfg[key]!r} changes the SAE's arithmetic and is not implemented (allowed: {allowed})"
        )


def load_sae(path: str | Path, *, dtype: torch.dtype | None = None) -> SAE:
    """An SAE from a sae-lens (`sae_weights.safetensors`) or sparsify (`sae.safetensors`)
    directory, with `cfg.json` beside it.

    Raises:
        SAEError: no SAE in the directory, an architecture or setting not implemented, weights that
            do not match the config.
    """
    path = Path(path)
    cfg_path = path / SAE_LENS_CFG
    if not cfg_path.exists():
        raise SAEError(f"{path} holds no cfg.json: give the directory of one SAE (sae-lens or sparsify format)")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SAEError(f"{cfg_path} is not valid JSON ({e}); re-save the SAE") from None
    if (path / SAE_LENS_WEIGHTS).exists():
        weights = load_file(path / SAE_LENS_WEIGHTS)
        _refuse(raw, "normalize_activations", ("none", None), "sae-lens")
        _refuse(raw, "reshape_activations", ("none", None), "sae-lens")
        _refuse(raw, "rescale_acts_by_decoder_norm", (False, None), "sae-lens")
        arch = raw.get("architecture", "standard")
        if arch == "batchtopk":  # stored per-token as a JumpReLU after training in sae-lens
            raise SAEError(
                "a batchtopk SAE selects features across a batch; convert it to jumprelu (sae-lens does at save)"
            )
        meta = raw.get("metadata") or raw.get("meta") or {}
        cfg = SAEConfig(
            d_in=int(raw["d_in"]),
            d_sae=int(raw["d_sae"]),
            architecture=arch,
            k=raw.get("k"),
            apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
            hook_name=raw.get("hook_name") or meta.get("hook_name"),
            model_name=raw.get("model_name") or meta.get("model_name"),
        )
    elif (path / SPARSIFY_WEIGHTS).exists():
        state = load_file(path / SPARSIFY_WEIGHTS)
        if raw.get("batch_topk") or raw.get("multi_topk") or raw.get("transcode"):
            raise SAEError(
                "sparsify batch_topk / multi_topk / transcoder SAEs are not implemented; a plain TopK SAE is"
            )
        if "encoder.weight" not in state:
            raise SAEError(f"{path / SPARSIFY_WEIGHTS} has no encoder.weight (have {sorted(state)})")
        d_sae, d_in = state["encoder.weight"].shape
        weights = {
            "W_enc": state["encoder.weight"].T.contiguous(),
            "b_enc": state["encoder.bias"],
            "W_dec": state["W_dec"],
            "b_dec": state["b_dec"],
        }
        if "W_skip" in state:
            weights["W_skip"] = state["W_skip"]
        cfg = SAEConfig(d_in=int(raw.get("d_in", d_in)), d_sae=int(d_sae), architecture="topk", k=int(raw["k"]))
    else:
        raise SAEError(
            f"{path} has cfg.json but neither {SAE_LENS_WEIGHTS} (sae-lens) nor {SPARSIFY_WEIGHTS} (sparsify)"
        )
    sae = SAE(cfg, weights)
    return sae.to(dtype) if dtype is not None else sae


def save_sae(sae: SAE, path: str | Path) -> Path:
    """Write `sae` in sae-lens's format (what `SAE.load_from_disk` reads)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    c = sae.cfg
    names = ["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if c.architecture == "jumprelu" else [])
    save_file({n: getattr(sae, n).contiguous() for n in names}, path / SAE_LENS_WEIGHTS)
    cfg = {
        "architecture": c.architecture,
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": c.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "meta": {"hook_name": c.hook_name, "model_name": c.model_name},  # sae-lens 6 reads `meta`
    }
    if c.architecture == "topk":
        cfg["k"] = c.k
    (path / SAE_LENS_CFG).write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return path
