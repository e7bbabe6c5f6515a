"""benchmarks/app_latency.py: the unseen copies it uploads are new content that decodes as the clip."""
from __future__ import annotations

import hashlib

import numpy as np

from benchmarks.app_latency import unseen_copy
from tests.conftest import REPO_ROOT
from uniformer.data.video import probe, read_frames

CLIP = REPO_ROOT / "assets" / "clips" / "synthetic_approaching.mp4"


def test_unseen_copies_hash_differently_and_decode_to_the_same_frames(tmp_path):
    (tmp_path / "again").mkdir()
    copies = [unseen_copy(CLIP, tmp_path, i) for i in range(2)] + [unseen_copy(CLIP, tmp_path / "again", 0)]
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in [CLIP, *copies]}
    assert len(digests) == 4  # the same index in another run is new content too (random bytes)
    n = probe(CLIP).num_frames
    original = read_frames(CLIP, np.arange(n))
    for path in copies:
        assert probe(path).num_frames == n
        assert np.array_equal(read_frames(path, np.arange(n)), original)
