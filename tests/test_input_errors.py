"""Every input argument gets a clear error (issue 17 item 7), frame-sampling policies (item 9),
the cache memory estimate and budget (item 8)."""

from __future__ import annotations

import json
import os
import signal

import fabricate
import numpy as np
import pytest
import torch
from conftest import frames

from vlens import HookedVideoLLM
from vlens import knockout as ko
from vlens.data import DatasetError, inside, load_dataset
from vlens.inputs.sampling import VideoError, sample_indices
from vlens.inputs.video import load_video, write_video
from vlens.interventions.knockout import KnockoutError
from vlens.model import cache_memory


# n_frames, start, end, fps -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_frames": 4.0}, r"n_frames must be an integer >= 1, got 4.0 \(float\) \(pass n_frames=4\)"),
        ({"n_frames": "4"}, r"got '4' \(str\) \(pass n_frames=4, an int, not a string\)"),
        ({"n_frames": True}, r"n_frames must be an integer >= 1, got the bool True"),
        ({"n_frames": 0}, r"n_frames must be >= 1, got 0"),
        ({"start": float("nan"), "fps": 10}, r"start must be a finite number of seconds, got nan"),
        ({"end": float("inf"), "fps": 10}, r"end must be a finite number of seconds, got inf"),
        ({"start": -1.0, "fps": 10}, r"start must be >= 0 seconds, got -1.0"),
        ({"start": "1", "fps": 10}, r"start must be a number of seconds or None, got '1'"),
        ({"fps": 0}, r"fps must be a finite number > 0 \(the clip's frames per second\), got 0"),
        ({"fps": -5}, r"fps must be a finite number > 0 .*got -5"),
        ({"fps": float("nan")}, r"fps must be a finite number > 0 .*got nan"),
        ({"sampling": "random"}, r"sampling must be one of 'centres', 'linspace', 'fps', 'internvl', got 'random'"),
    ],
)
def test_bad_sampling_arguments_name_the_value_and_the_fix(model, kwargs, message):
    with pytest.raises(VideoError, match=message):
        model.to_inputs(frames(8), "q", **{"n_frames": 2, **kwargs})


def test_numpy_integer_frame_count_is_accepted(model):
    a = model.to_inputs(frames(8), "q", n_frames=np.int64(2))
    assert a.videos[0].indices == (2, 6)


def test_start_beyond_the_clip_says_how_long_the_clip_is(model, tmp_path):
    with pytest.raises(VideoError) as err:
        model.to_inputs(frames(20), "q", n_frames=2, start=5.0, fps=10)
    msg = str(err.value)
    assert "start=5s is at or past the end" in msg and "2.00s long (20 frames at 10 fps)" in msg
    assert "end=None" not in msg
    path = write_video(tmp_path / "c.mp4", frames(20), fps=10)
    with pytest.raises(VideoError, match=r"start=3s is at or past the end of video .*c\.mp4, which is 2\.00s long"):
        model.to_inputs(path, "q", n_frames=2, start=3.0)


def test_empty_and_mismatched_batches(model):
    with pytest.raises(ValueError, match="an empty batch"):
        model.to_inputs([], [])
    with pytest.raises(ValueError, match="one video per question: got 2 questions and 1 video"):
        model.to_inputs([frames(2)], ["a", "b"], n_frames=2)
    with pytest.raises(TypeError, match=r"every question must be a str; row\(s\) \[1\]"):
        model.to_inputs([frames(2), frames(2)], ["a", 3], n_frames=2)


# files: decord's messages, regular files only ------------------------------------------------------
def test_decoder_messages_are_folded_into_the_error_not_printed(model, tmp_path, capfd):
    full = write_video(tmp_path / "full.mp4", frames(20), fps=10).read_bytes()
    head = tmp_path / "head.mp4"
    head.write_bytes(full[:64])  # the header only: no moov atom
    capfd.readouterr()
    with pytest.raises(VideoError) as err:
        model.to_inputs(head, "q", n_frames=2)
    out, errtext = capfd.readouterr()
    assert "moov atom not found" in str(err.value) and "ERROR opening" in str(err.value)
    assert "moov" not in errtext and "ERROR" not in errtext and out == ""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    folder = tmp_path / "frames"
    folder.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(frames(1, seed=i)[0]).save(folder / f"{i}.png")
    os.mkfifo(folder / "9.png")  # a FIFO among the frame images is skipped, not opened

    # an alarm guards the test: were the FIFO opened, open() would block until a writer came
    def hung(signum, frame):
        raise TimeoutError("load_video opened the FIFO and blocked")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        assert len(load_video(folder, 3)) == 3
        with pytest.raises(VideoError, match=r"is a FIFO \(named pipe\); vlens only opens regular files"):
            load_video(fifo, 2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# dataset paths stay inside the dataset root ------------------------------------------------------
def test_annotation_paths_outside_the_dataset_are_refused(tmp_path):
    root = fabricate.mvbench(tmp_path / "mvb")
    task = root / "json" / "moving_direction.json"
    items = json.loads(task.read_text())
    for bad, why in [
        ("/etc/passwd", "is absolute"),
        ("../../../secret.mp4", "leaves the dataset folder"),
        ("sub/../../../../x.mp4", "leaves the dataset folder"),
    ]:
        task.write_text(json.dumps([{**items[0], "video": bad}]))
        with pytest.raises(DatasetError, match=f"MVBench moving_direction.json item 0: video path .* {why}"):
            load_dataset(f"mvbench:{root}")
    task.write_text(json.dumps([{**items[0], "video": "sub/../inside.mp4"}]))  # stays inside: fine
    (sample,) = [s for s in load_dataset(f"mvbench:{root}") if s.meta["task"] == "moving_direction"]
    assert sample.video == str(root / "video" / "clevrer" / "video_validation" / "inside.mp4")

    ego = fabricate.egoschema(tmp_path / "ego")
    qs = json.loads((ego / "questions.json").read_text())
    (ego / "questions.json").write_text(json.dumps([{**qs[0], "q_uid": "../../outside"}]))
    with pytest.raises(DatasetError, match=r"EgoSchema question '../../outside'.*leaves the dataset folder"):
        load_dataset(f"egoschema:{ego}")
    with pytest.raises(DatasetError, match="is empty or invalid"):
        inside(tmp_path, "", "test")


def test_videomme_ids_outside_the_dataset_are_refused(tmp_path):
    import pandas as pd

    root = fabricate.videomme(tmp_path / "vm", n=2)
    table = root / "videomme" / "test-00000-of-00001.parquet"
    df = pd.read_parquet(table)
    df.loc[0, "videoID"] = "../../../tmp/x"
    df.to_parquet(table)
    with pytest.raises(DatasetError, match=r"Video-MME question .* leaves the dataset folder"):
        load_dataset(f"videomme:{root}")


# layer selections ------------------------------------------------------------------------------------
def test_layer_selections_take_numpy_integers_and_refuse_non_integers():
    assert ko.layers(np.int64(3)).resolve(4) == (3,)
    assert ko.layers([np.int32(1), 2]).resolve(4) == (1, 2)
    assert ko.as_selection(np.int64(2)).resolve(4) == (2,)
    assert ko.from_layer(np.int64(2)).resolve(4) == (2, 3)
    assert ko.window(np.int64(3), np.int64(2)).resolve(4) == (2, 3)
    assert ko.layers(torch.tensor([0, 3])).resolve(4) == (0, 3)
    with pytest.raises(
        KnockoutError, match=r"from_layer\(i\) must be an integer layer index, got 1.9 \(float\).*does not round"
    ):
        ko.from_layer(1.9)
    with pytest.raises(KnockoutError, match=r"got 2.0 \(float\)"):
        ko.window(2.0, 2)
    with pytest.raises(KnockoutError, match=r"each entry must be an integer layer index, got 1.5"):
        ko.layers([0, 1.5])
    with pytest.raises(KnockoutError, match="got the string '3'"):
        ko.layers("3")
    with pytest.raises(KnockoutError, match="got the bool True"):
        ko.from_layer(True)
    with pytest.raises(KnockoutError, match="k >= 1"):
        ko.window(3, 0)


# sampling policies ----------------------------------------------------------------------------------
def test_sampling_policies_pick_the_authors_indices(model, tmp_path):
    # centres: floor((i + 0.5) * 20 / 4) = 2, 7, 12, 17; linspace: int(linspace(0, 19, 4)) = 0, 6, 12, 19
    assert sample_indices(20, 4) == [2, 7, 12, 17]
    assert sample_indices(20, 4, sampling="linspace") == [0, 6, 12, 19]
    assert sample_indices(20, 4, first=10, last=19, sampling="linspace") == [10, 13, 16, 19]
    # fps at 25 fps: every 25th frame while that is <= n_frames (4 frames for 8 asked) ...
    assert sample_indices(100, 8, sampling="fps", fps=25.0) == [0, 25, 50, 75]
    # ... and linspace once one a second would exceed n_frames (12 seconds, 8 frames)
    assert sample_indices(300, 8, sampling="fps", fps=25.0) == [0, 42, 85, 128, 170, 213, 256, 299]
    with pytest.raises(VideoError, match=r"sampling='fps' .* needs the clip's frame rate: pass fps="):
        sample_indices(20, 4, sampling="fps")
    path = write_video(tmp_path / "clip.mp4", frames(30, seed=1), fps=10)
    lin = model.to_inputs(path, "q", n_frames=4, sampling="linspace")
    assert lin.videos[0].indices == (0, 9, 19, 29)
    by_fps = model.to_inputs(path, "q", n_frames=4, sampling="fps")  # 3 s at 10 fps: 3 frames
    assert by_fps.videos[0].indices == (0, 10, 20) and by_fps.videos[0].timestamps == pytest.approx((0, 1, 2))
    assert by_fps["pixel_values_videos"].shape[1] == 3
    assert load_video(frames(30), 4, sampling="linspace").indices == (0, 9, 19, 29)


# cache memory ---------------------------------------------------------------------------------------
def _kept(cache) -> int:
    return sum(v.numel() * v.element_size() for v in cache.cache_dict.values())


def test_cache_estimate_is_exact_and_the_budget_refuses_with_the_fix(model):
    inputs = model.to_inputs([frames(2), frames(2, seed=1)], ["a", "a longer question"], n_frames=2)
    everything = cache_memory.estimate(model, inputs)
    _, cache = model.run_with_cache(inputs)  # default budget "auto": a tiny model passes
    assert everything.total == _kept(cache) and everything.n_tensors == len(cache.cache_dict)
    B, N, L, H = inputs.batch_size, inputs.seq_len, model.cfg.n_layers, model.cfg.n_heads
    assert everything.nxn == 2 * L * B * H * N * N * 4  # scores + pattern, fp32
    no_nxn = lambda name: not name.endswith(("hook_attn_scores", "hook_pattern"))
    with pytest.raises(cache_memory.CacheMemoryError) as err:
        model.run_with_cache(inputs, memory_budget=everything.total - 1)
    msg = str(err.value)
    assert 'names_filter=lambda name: not name.endswith(("hook_attn_scores", "hook_pattern"))' in msg
    assert cache_memory.n_bytes(everything.total - everything.nxn) in msg and "memory_budget=" in msg
    _, small = model.run_with_cache(inputs, names_filter=no_nxn, memory_budget=everything.total - everything.nxn)
    assert _kept(small) == everything.total - everything.nxn
    resid = cache_memory.estimate(model, inputs, ["blocks.0.hook_resid_pre"])
    assert resid.total == B * N * model.cfg.d_model * 4
    with pytest.raises(cache_memory.CacheMemoryError, match="cache fewer hooks with names_filter"):
        model.run_with_cache(inputs, names_filter=["blocks.0.hook_resid_pre"], memory_budget=100)
    _, part = model.run_with_cache(inputs, stop_at_layer=1, memory_budget=None)
    assert cache_memory.estimate(model, inputs, stop_at_layer=1).total == _kept(part)
    assert cache_memory.budget_bytes("1.5GB", "cpu") == 1_500_000_000
    assert cache_memory.budget_bytes("512 MiB", "cpu") == 512 * 2**20
    with pytest.raises(ValueError, match="is not a size"):
        model.run_with_cache(inputs, memory_budget="lots")


def test_a_dtype_name_torch_does_not_know_is_refused_by_name(onevision_dir):
    with pytest.raises(TypeError, match=r"dtype='half16' is not a torch dtype.*'bfloat16'"):
        HookedVideoLLM.from_pretrained(onevision_dir, dtype="half16")
