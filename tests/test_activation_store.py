"""The activation store: rows equal run_with_cache's, resume, lock, shards, model checks."""

import pytest
import torch

from vlens.data import synthetic
from vlens.features.store import ActivationStore, ActivationStoreError, ActivationWriter, StoreLockedError
from vlens.inputs.prompts import mc_question
from vlens.model.hooked_video_llm import HookedVideoLLM
from vlens.organism import checkpoint_dir

HOOK = "blocks.2.hook_resid_post"


@pytest.fixture(scope="module")
def model():
    return HookedVideoLLM.from_pretrained(checkpoint_dir())


def _inputs(model, s):
    return model.to_inputs(s.video, mc_question(s.question, s.options), n_frames=8, fps=s.fps)


def test_rows_equal_cache_and_read_back(model, tmp_path):
    samples = synthetic.generate(3, 1, n_frames=8, size=32, shuffle=False)
    with ActivationWriter(tmp_path, model, [HOOK], positions="video,last", chunk_rows=200) as w:
        for s in samples:
            w.add(s.id, _inputs(model, s), {"answer": s.answer})
    store = ActivationStore(tmp_path, model=model)
    batch = store.all(HOOK)
    for k, s in enumerate(samples):
        inputs = _inputs(model, s)
        _, cache = model.run_with_cache(inputs, names_filter=HOOK)
        lay = inputs.layout
        want = (lay.is_video | lay.role_mask("last")).nonzero().flatten()
        rows = batch.sample == k
        assert torch.equal(batch.position[rows], want)
        torch.testing.assert_close(batch.acts[rows], cache[HOOK][0, want], atol=1e-6, rtol=0)
        assert torch.equal(batch.frame[rows], lay.frame[want])
        assert torch.equal(batch.row[rows], lay.row[want])
    assert store.samples[1]["labels"] == {"answer": samples[1].answer}


def test_resume_lock_shards_and_errors(model, tmp_path):
    samples = synthetic.generate(2, 1, n_frames=8, size=32, shuffle=False)
    w = ActivationWriter(tmp_path, model, [HOOK], positions="last", shard=(0, 2))
    assert w.add(samples[0].id, _inputs(model, samples[0]))
    w.flush()
    with pytest.raises(StoreLockedError):
        ActivationWriter(tmp_path, model, [HOOK], positions="last", shard=(0, 2))
    w.close()
    w = ActivationWriter(tmp_path, model, [HOOK], positions="last", shard=(0, 2))
    assert not w.add(samples[0].id, _inputs(model, samples[0]))  # resumed: already stored
    w.finish()
    with pytest.raises(ActivationStoreError, match=r"missing shard\(s\) \[1\] of 2.*--shard 1/2"):
        ActivationStore(tmp_path)
    with pytest.raises(ActivationStoreError, match="other settings"):
        ActivationWriter(tmp_path, model, [HOOK], positions="video", shard=(1, 2))
    with pytest.raises(ActivationStoreError, match="not hook points"):
        ActivationWriter(tmp_path / "x", model, ["blocks.99.hook_resid_post"])
    with ActivationWriter(tmp_path, model, [HOOK], positions="last", shard=(1, 2)) as w1:
        w1.add(samples[1].id, _inputs(model, samples[1]))
    store = ActivationStore(tmp_path)
    assert len(store.samples) == 2 and store.n_rows == 2
    store.manifest["revision"] = "other"
    with pytest.raises(ActivationStoreError, match="another checkpoint"):
        store.check_model(model)
