"""Tests for the P×K RandomIdentitySampler (torchrepro.retrieval.sampler)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import torchrepro.retrieval.sampler as sampler_mod
from torchrepro.retrieval.sampler import RandomIdentitySampler

# identity -> number of images; K = 4, so identities 0, 1, 2 have fewer than K images
COUNTS = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 8, 6: 9, 7: 13, 8: 4, 9: 4, 10: 7, 11: 6}
K, P = 4, 3


def make_pids(counts=COUNTS, seed=0):
    pids = [pid for pid, n in counts.items() for _ in range(n)]
    return list(np.random.default_rng(seed).permutation(pids))  # identities scattered over the data set


def batches(order, batch_size):
    assert len(order) % batch_size == 0
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def check_pk(batch, pids, p=P, k=K):
    per_pid = Counter(pids[i] for i in batch)
    assert len(per_pid) == p, per_pid
    assert all(c == k for c in per_pid.values()), per_pid


def test_every_batch_is_p_identities_times_k():
    pids = make_pids()
    s = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=3)
    for epoch in range(4):
        s.set_epoch(epoch)
        for b in batches(list(s), P * K):
            check_pk(b, pids)
            for pid in {pids[i] for i in b}:
                items = [i for i in b if pids[i] == pid]
                if COUNTS[pid] >= K:  # enough images: a group is drawn without replacement
                    assert len(set(items)) == K


def test_small_identities_sampled_with_replacement():
    pids = make_pids()
    s = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=0)
    order = list(s)
    for pid in (0, 1, 2):  # 1, 2, 3 images
        own = {i for i, q in enumerate(pids) if q == pid}
        for b in batches(order, P * K):
            items = [i for i in b if pids[i] == pid]
            if items:
                assert len(items) == K and set(items) <= own
                assert len(set(items)) < K  # necessarily repeats
    # the single-image identity repeats its only image K times
    only = [i for i, q in enumerate(pids) if q == 0][0]
    assert order.count(only) >= K


def test_all_identities_used_every_epoch():
    pids = make_pids()
    s = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=1)
    for epoch in range(6):
        s.set_epoch(epoch)
        assert {pids[i] for i in s} == set(COUNTS)


def test_all_groups_used():
    """Every identity contributes at least floor(n / K) groups (1 when n < K)."""
    pids = make_pids()
    s = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=1)
    used = Counter(pids[i] for i in s)
    for pid, n in COUNTS.items():
        assert used[pid] >= max(n, K) // K * K


def test_deterministic_per_seed_and_epoch_and_no_global_rng():
    pids = make_pids()
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=7)
    b = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=7)
    torch.manual_seed(123)
    np.random.seed(123)
    first = list(a)
    torch.manual_seed(999)
    np.random.seed(999)
    assert list(b) == first
    a.set_epoch(1)
    second = list(a)
    assert second != first
    a.set_epoch(0)
    assert list(a) == first
    c = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=8)
    assert list(c) != first
    # the sampler itself never draws from the global generators
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)
    list(RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=5))
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.random.get_state()[2] == np_state[2] and np.array_equal(np.random.get_state()[1], np_state[1])


def test_len_is_exact_and_fixed():
    pids = make_pids()
    s = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=2)
    lengths = set()
    for epoch in range(5):
        s.set_epoch(epoch)
        n = len(list(s))
        assert len(s) == n and n % (P * K) == 0
        lengths.add(n)
    assert len(lengths) == 1


def test_dominant_identity_is_capped():
    """An identity with more groups than steps cannot take two slots in a step: surplus groups are dropped."""
    counts = {0: 100, 1: 4, 2: 4, 3: 4, 4: 4}
    pids = make_pids(counts)
    s = RandomIdentitySampler(pids, batch_size=2 * K, num_instances=K, seed=0)
    order = list(s)
    assert len(s) == len(order)
    for b in batches(order, 2 * K):
        check_pk(b, pids, p=2)
    assert {pids[i] for i in order} == set(counts)


def test_resume_skip():
    pids = make_pids()
    s = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K, seed=4)
    s.set_epoch(2)
    full = list(s)
    s.skip = 2 * P * K
    assert list(s) == full[2 * P * K:]
    assert list(s) == full  # the skip applies once


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_ranks_disjoint_identities_per_step(monkeypatch, world):
    pids = make_pids()
    per_rank = []
    for rank in range(world):
        monkeypatch.setattr(sampler_mod, "dist_rank_world", lambda rank=rank: (rank, world))
        s = RandomIdentitySampler(pids, batch_size=2 * K, num_instances=K, seed=11)
        s.set_epoch(3)
        order = list(s)
        assert len(s) == len(order)
        per_rank.append(batches(order, 2 * K))
    assert len({len(b) for b in per_rank}) == 1  # same number of steps on every rank
    used = set()
    for step in zip(*per_rank):
        ids = [{pids[i] for i in b} for b in step]
        for b in step:
            check_pk(b, pids, p=2)
        assert len(set().union(*ids)) == 2 * world  # disjoint across ranks
        used |= set().union(*ids)
    assert used == set(COUNTS)
    # the union of the ranks' i-th batches is the i-th batch of one process with world times the batch
    monkeypatch.setattr(sampler_mod, "dist_rank_world", lambda: (0, 1))
    single = RandomIdentitySampler(pids, batch_size=world * 2 * K, num_instances=K, seed=11)
    single.set_epoch(3)
    merged = [i for step in zip(*per_rank) for b in step for i in b]
    assert merged == list(single)


def test_errors(monkeypatch):
    pids = make_pids()
    with pytest.raises(ValueError, match="multiple of num_instances"):
        RandomIdentitySampler(pids, batch_size=10, num_instances=4)
    with pytest.raises(ValueError, match="at least P"):
        RandomIdentitySampler([0, 0, 1, 1], batch_size=12, num_instances=4)
    monkeypatch.setattr(sampler_mod, "dist_rank_world", lambda: (0, 8))
    s = RandomIdentitySampler(pids, batch_size=P * K, num_instances=K)
    with pytest.raises(ValueError, match="world_size"):
        len(s)


def test_with_dataloader_batches():
    pids = make_pids()
    s = RandomIdentitySampler(torch.tensor(pids), batch_size=P * K, num_instances=K, seed=0)
    loader = torch.utils.data.DataLoader(torch.arange(len(pids)), batch_size=P * K, sampler=s)
    got = list(loader)
    assert len(got) == len(s) // (P * K)
    for b in got:
        check_pk(b.tolist(), pids)


def test_keyed_mode_yields_unique_slots_and_survives_skip():
    pids = np.repeat(np.arange(8), 5)
    plain = RandomIdentitySampler(pids, batch_size=8, num_instances=4, seed=3)
    keyed = RandomIdentitySampler(pids, batch_size=8, num_instances=4, seed=3, keyed=True)
    keyed.set_epoch(2)
    plain.set_epoch(2)
    items = list(keyed)
    assert [i for _, _, i in items] == list(plain)
    assert {e for e, _, _ in items} == {2}
    assert [s for _, s, _ in items] == list(range(len(items)))
    keyed.skip = 8
    assert list(keyed) == items[8:]
