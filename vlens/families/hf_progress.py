"""HF's download/loading progress bars off while vlens loads (vlens prints its own progress
where it matters); restored as they were whatever happens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def hf_progress_bars_off() -> Iterator[None]:
    """Disable `transformers`' progress bars inside the block, restoring the previous state."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
