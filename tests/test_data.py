"""Dataset loaders on fabricated release layouts, and the synthetic generator's answer keys."""

from __future__ import annotations

import fabricate
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlens.data import DatasetError, load_dataset, synthetic
from vlens.inputs.video import load_video


# --- synthetic: answer keys are exact ------------------------------------------------------------
def _colors_in(frame: np.ndarray) -> set[str]:
    found = set()
    for name, rgb in synthetic.COLORS.items():
        if (frame == np.array(rgb, dtype=np.uint8)).all(-1).any():
            found.add(name)
    return found


def _centroid(frame: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero((frame != synthetic.BACKGROUND).any(-1))
    return np.array([xs.mean(), ys.mean()])


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(synthetic.QUESTION_KINDS), seed=st.integers(0, 10_000), shuffle=st.booleans())
def test_answer_keys_match_the_pixels(kind, seed, shuffle):
    frames, _question, options, answer, facts = synthetic.make_sample(
        kind, np.random.default_rng(seed), shuffle=shuffle
    )
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    assert len(set(options)) == len(options) and 0 <= answer < len(options)
    truth = options[answer]
    if kind == "color":
        assert all(_colors_in(f) == {truth} for f in frames)
    elif kind == "shape":
        assert truth == facts["shape"]
        stencil = synthetic.shape_mask(truth, facts["object_size"])
        assert (frames[0] != synthetic.BACKGROUND).any(-1).sum() == stencil.sum()
    elif kind == "direction":
        dx, dy = _centroid(frames[-1]) - _centroid(frames[0])
        seen = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
        assert seen == truth and max(abs(dx), abs(dy)) >= 2 * (len(frames) - 1)
    elif kind == "first":
        assert _colors_in(frames[0]) == {truth}
        assert len(_colors_in(frames[-1])) == 2
    elif kind == "color_change":
        changed = _colors_in(frames[0]) != _colors_in(frames[-1])
        assert truth == ("yes" if changed else "no")
    elif kind == "count":
        assert len(_colors_in(frames[0])) == synthetic.COUNT_WORDS.index(truth) + 1


def test_synthetic_is_deterministic_and_written_files_decode(tmp_path):
    a = synthetic.generate(6, seed=3)
    b = synthetic.generate(6, seed=3)
    assert [s.options for s in a] == [s.options for s in b]
    assert all(np.array_equal(x.video, y.video) for x, y in zip(a, b))
    assert synthetic.generate(1, seed=3, start=4)[0].question == a[4].question
    files = synthetic.generate(2, seed=3, write_dir=tmp_path)
    decoded = load_video(files[0].video, n_frames=8)
    assert np.abs(decoded.frames.astype(int) - a[0].video.astype(int)).mean() < 12  # mp4 is lossy
    assert [s.meta["kind"] for s in load_dataset("synthetic:3,n=12", task="count")] == ["count"] * 12


def test_synthetic_options_canonical_unless_shuffled():
    canonical = load_dataset("synthetic:5,n=60")
    for s in canonical:  # every option list is in the pool's own order
        pool = {
            "direction": list(synthetic.DIRECTIONS),
            "count": list(synthetic.COUNT_WORDS),
            "shape": list(synthetic.SHAPES),
            "color_change": ["yes", "no"],
        }.get(s.meta["kind"], list(synthetic.COLORS))
        assert list(s.options) == sorted(s.options, key=pool.index), s
    shuffled = load_dataset("synthetic:5,n=60,shuffle=1")
    assert [s.meta for s in shuffled] == [s.meta for s in canonical]  # same clips and answers
    assert any(a.options != b.options for a, b in zip(shuffled, canonical))
    assert all(a.options[a.answer] == b.options[b.answer] for a, b in zip(shuffled, canonical))


# --- released layouts ----------------------------------------------------------------------------
def test_videomme_layout_filters_and_missing_video(tmp_path):
    root = fabricate.videomme(tmp_path / "vm", n=4, missing=2)
    samples = load_dataset(f"videomme:{root}")
    assert [s.id for s in samples] == ["videomme/000-1", "videomme/001-1", "videomme/002-1", "videomme/003-1"]
    assert samples[1].options == ("left", "right", "up", "down") and samples[1].answer == 1
    assert samples[2].missing and "vid002.mp4" in samples[2].missing
    assert [s.id for s in load_dataset(f"videomme:{root}", duration="medium")] == ["videomme/001-1", "videomme/003-1"]
    assert len(load_dataset(f"videomme:{root}", task_type="Counting Problem", limit=1)) == 1
    with pytest.raises(DatasetError, match="no duration"):
        load_dataset(f"videomme:{root}", duration="huge")
    with pytest.raises(DatasetError, match="parquet"):
        load_dataset(f"videomme:{tmp_path / 'nothing'}")


def test_mvbench_layout_time_bounds_and_frame_folders(tmp_path):
    root = fabricate.mvbench(tmp_path / "mvb")
    samples = load_dataset(f"mvbench:{root}")
    assert [s.meta["task"] for s in samples] == ["action_sequence"] * 2 + ["moving_direction", "episodic_reasoning"]
    seq = samples[0]
    assert seq.answer == 1 and (seq.start, seq.end) == (0.5, 2.5)
    ep = samples[-1]
    assert ep.fps == 3.0 and ep.video.endswith("ep0")
    sampled = load_video(ep.video, 4, start=ep.start, end=ep.end, fps=ep.fps)
    assert max(sampled.indices) < 9  # 3 s at 3 fps
    assert [s.id for s in load_dataset(f"mvbench:{root}", task="Moving Direction")] == ["mvbench/moving_direction/0"]
    with pytest.raises(DatasetError, match="unknown MVBench task"):
        load_dataset(f"mvbench:{root}", task="juggling")
    import shutil

    shutil.rmtree(root / "video" / "clevrer")
    with pytest.raises(DatasetError, match="clevrer/video_validation"):
        load_dataset(f"mvbench:{root}")


def test_egoschema_layout(tmp_path):
    root = fabricate.egoschema(tmp_path / "ego")
    samples = load_dataset(f"egoschema:{root}")
    assert [s.answer for s in samples] == [1, None, 4]
    assert len(samples[0].options) == 5
    with pytest.raises(DatasetError, match=r"questions.json"):
        load_dataset(f"egoschema:{tmp_path}")


def test_bad_dataset_specs():
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("kinetics:/x")
    with pytest.raises(DatasetError, match="needs its directory"):
        load_dataset("mvbench")
    with pytest.raises(DatasetError, match="unknown synthetic option"):
        load_dataset("synthetic:0,frames=8,colour=1")
    with pytest.raises(DatasetError, match="shuffle must be 0 or 1"):
        load_dataset("synthetic:0,shuffle=2")
