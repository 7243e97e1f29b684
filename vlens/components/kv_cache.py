"""The key/value cache: what each layer's attention has already computed, for decoding and sweeps.

As gpt-fast's `KVCache`, one object with `update()`; unlike it, sizes are not preallocated (a
prompt's length is known only after the processor ran, and sweeps fill prefixes of any length).
Each layer also keeps the *sequence indices* of its cached keys: after a visual early exit
(vlens.interventions.efficient) layers from the exit on hold only the rows that stayed, so the key positions of
different layers differ and masks must be built from the indices, not from a length.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


class KVCache:
    """Per-layer keys/values [batch, kv_head, key, d_head] with their sequence indices [key].

    `update(layer, k, v, index)` appends this call's rows and returns everything the layer's
    queries may read. A layer never updated reads only its own rows.
    """

    def __init__(self, n_layers: int):
        self.n_layers = n_layers
        self._k: list[Tensor | None] = [None] * n_layers
        self._v: list[Tensor | None] = [None] * n_layers
        self._index: list[Tensor | None] = [None] * n_layers
        self._contiguous = [True] * n_layers  # indices are 0..n−1 (no row ever left)

    @classmethod
    def from_prefix(
        cls,
        n_layers: int,
        prefix: dict[int, tuple[Float[Tensor, "batch kv_head key d_head"], Float[Tensor, "batch kv_head key d_head"]]],
    ) -> KVCache:
        """A cache holding, for the given layers, the keys/values of sequence positions 0..n−1
        (the sweep engine reuses a clean run's prefix this way)."""
        cache = cls(n_layers)
        for layer, (k, v) in prefix.items():
            cache._k[layer], cache._v[layer] = k, v
            cache._index[layer] = torch.arange(k.shape[2], device=k.device)
        return cache

    def update(
        self,
        layer: int,
        k: Float[Tensor, "batch kv_head pos d_head"],
        v: Float[Tensor, "batch kv_head pos d_head"],
        index: Int[Tensor, " pos"],
        *,
        contiguous: bool = True,
    ) -> tuple[Tensor, Tensor, Int[Tensor, " key"]]:
        """Append this call's rows of `layer`; return all its keys, values and their indices.
        `contiguous=False` says the rows are not the next consecutive positions (some left)."""
        self._contiguous[layer] = self._contiguous[layer] and contiguous
        old_k, old_v, old_index = self._k[layer], self._v[layer], self._index[layer]
        if old_k is None or old_v is None or old_index is None:
            new_k, new_v, new_index = k, v, index
        else:
            if k.shape[0] != old_k.shape[0]:
                raise ValueError(
                    f"the KV cache of layer {layer} holds {old_k.shape[0]} rows but this call has "
                    f"{k.shape[0]}; decode with the batch that filled the cache"
                )
            new_k, new_v = torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)
            new_index = torch.cat([old_index, index])
        self._k[layer], self._v[layer], self._index[layer] = new_k, new_v, new_index
        return new_k, new_v, new_index

    def is_contiguous(self, layer: int) -> bool:
        """The cached indices of `layer` are exactly 0..n−1."""
        return self._contiguous[layer]

    def seq_len(self, layer: int = 0) -> int:
        """How many positions `layer` has cached."""
        keys = self._k[layer]
        return 0 if keys is None else keys.shape[2]

    def __repr__(self) -> str:
        filled = [l for l in range(self.n_layers) if self._k[l] is not None]
        return f"KVCache({len(filled)}/{self.n_layers} layers filled, {self.seq_len(filled[0]) if filled else 0} keys in the first)"
