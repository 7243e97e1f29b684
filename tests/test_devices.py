"""Models larger than one device: device_map / max_memory through accelerate's planning.

This machine has only a CPU, so the split itself (blocks on a GPU and on the CPU) is not exercised
here; what is tested is that the planned load path gives the same numbers and refuses bad
arguments. benchmarks/gpu.sh splits a model across a GPU and the CPU where a GPU exists."""

from __future__ import annotations

import pytest
import torch
from conftest import frames

from vlens import HookedVideoLLM
from vlens import knockout as ko


def test_device_map_auto_loads_the_same_model(onevision_dir, model):
    planned = HookedVideoLLM.from_pretrained(onevision_dir, device_map="auto", max_memory={"cpu": "2GiB"})
    inputs = model.to_inputs(frames(2, seed=9), "what color is the object", n_frames=2)
    hooks = ko.LV().hooks(inputs, layers=ko.from_layer(1))
    with torch.no_grad():
        assert torch.equal(planned(inputs), model(inputs))
        assert torch.equal(
            planned.run_with_hooks(inputs, fwd_hooks=hooks), model.run_with_hooks(inputs, fwd_hooks=hooks)
        )
    assert {p.device.type for p in planned.parameters()} == {"cpu"}


def test_device_map_arguments_are_checked(onevision_dir):
    with pytest.raises(ValueError, match="not both"):
        HookedVideoLLM.from_pretrained(onevision_dir, device="cuda", device_map="auto")
    with pytest.raises(ValueError, match="device_map='auto'"):
        HookedVideoLLM.from_pretrained(onevision_dir, max_memory={"cpu": "1GiB"})
