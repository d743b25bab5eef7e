"""Seeding and RNG state capture, so runs repeat and resumed runs continue bit for bit."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that is a pure function of its parts (seed, epoch, index, rank …).

    Hashing (rather than adding) keeps derived streams independent: seed+rank would make rank 1 of run
    seed 0 replay rank 0 of run seed 1.
    """
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def rank_seed(seed: int, rank: int) -> int:
    """Per-rank seed: distinct per DDP rank so augmentations differ between ranks (a known DDP pitfall)."""
    return seed if rank == 0 else derive_seed(seed, "rank", rank) % (2**32)


def capture_rng_state() -> dict[str, Any]:
    """Global python / numpy / torch CPU RNG states (CUDA too when present)."""
    # Plain ints/lists/tensors only, so checkpoints load with torch.load(weights_only=True).
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_internal), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
