"""ResumableSampler / ResumableLoader: order, DDP sharding, skip-on-resume, keyed augmentation."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from torchrepro.core.data import ResumableLoader, ResumableSampler, keyed_rng


class Echo(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        return torch.tensor(key[1] if isinstance(key, tuple) else key)


def test_order_is_a_function_of_seed_and_epoch():
    a, b = ResumableSampler(10, seed=3), ResumableSampler(10, seed=3)
    assert list(a) == list(b) and sorted(a) == list(range(10))
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(10))
    assert list(ResumableSampler(10, seed=4)) != first


def test_interleaved_shards_union_equals_single_process_batches(monkeypatch):
    single = ResumableSampler(10, seed=0).epoch_order()
    shards = []
    for rank in range(2):
        monkeypatch.setattr("torchrepro.core.data.dist_rank_world", lambda r=rank: (r, 2))
        shards.append(ResumableSampler(10, seed=0).epoch_order())
    # batch i of size b on each rank ∪ = batch i of size 2b in one process
    b = 2
    for i in range(2):
        union = sorted(shards[0][i * b:(i + 1) * b] + shards[1][i * b:(i + 1) * b])
        assert union == sorted(single[i * 2 * b:(i + 1) * 2 * b])


def test_uneven_dataset_is_padded_by_wrapping(monkeypatch):
    monkeypatch.setattr("torchrepro.core.data.dist_rank_world", lambda: (1, 4))
    s = ResumableSampler(10, seed=0, shuffle=False)
    assert len(s) == 3 and s.epoch_order() == [1, 5, 9]
    monkeypatch.setattr("torchrepro.core.data.dist_rank_world", lambda: (3, 4))
    assert ResumableSampler(10, seed=0, shuffle=False).epoch_order() == [3, 7, 1]  # 1 wraps around


def test_loader_state_resumes_at_the_next_batch():
    full = ResumableLoader(Echo(10), ResumableSampler(10, seed=1), batch_size=3)
    batches = [b.tolist() for b in full]
    partial = ResumableLoader(Echo(10), ResumableSampler(10, seed=1), batch_size=3)
    it = iter(partial)
    next(it), next(it)
    state = partial.state_dict()
    assert state == {"epoch": 0, "batches": 2}
    fresh = ResumableLoader(Echo(10), ResumableSampler(10, seed=1), batch_size=3)
    fresh.load_state_dict(state)
    fresh.sampler.set_epoch(0)  # Lightning calls this before the epoch's first batch
    assert [b.tolist() for b in fresh] == batches[2:]
    assert [b.tolist() for b in fresh] == batches  # the skip applies once only


def test_loader_state_at_epoch_end_starts_the_next_epoch_whole():
    loader = ResumableLoader(Echo(6), ResumableSampler(6, seed=1), batch_size=2)
    list(loader)
    fresh = ResumableLoader(Echo(6), ResumableSampler(6, seed=1), batch_size=2)
    fresh.load_state_dict(loader.state_dict())
    fresh.sampler.set_epoch(1)
    assert len(list(fresh)) == 3


def test_keyed_rng_is_pure_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    expected_global = torch.rand(3)
    torch.manual_seed(0)
    with keyed_rng(7, 2, 5):
        a = torch.rand(4)
    with keyed_rng(7, 2, 5):
        b = torch.rand(4)
    with keyed_rng(7, 3, 5):
        c = torch.rand(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.rand(3), expected_global)


def test_keyed_sampler_yields_epoch_index_pairs():
    s = ResumableSampler(4, seed=0, keyed=True)
    s.set_epoch(2)
    assert all(isinstance(k, tuple) and k[0] == 2 for k in s)


def test_evaluation_sampler_does_not_pad(monkeypatch):
    monkeypatch.setattr("torchrepro.core.data.dist_rank_world", lambda: (3, 4))
    s = ResumableSampler(10, seed=0, shuffle=False, pad=False)
    assert len(s) == 2 and list(s) == [3, 7]  # no wrapped duplicate: each item is scored once
