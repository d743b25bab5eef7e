"""The SimCLR recipe end to end on tiny fixtures: the shipped CIFAR-10 config on CIFAR-10 python batches, the
baselines printed beside the trained encoder's scores, the untrained encoder rebuilt identically everywhere, and
the evaluation helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import REPO, run_main
from tests.simclr.fixtures import write_cifar10, write_fashion_mnist
from torchrepro.core.registry import resolve_config
from torchrepro.simclr.evaluation import knn_and_linear, linear_probe

TINY = ["data.val_size=10", "data.val_bank=null", "data.eval_batch_size=64", "data.image_size=16", "model.width=4", "model.channels_last=false",
        "model.proj_hidden=16", "model.proj_dim=8", "model.knn_k=10", "model.linear_steps=5",
        "trainer.progress_bar=false", "trainer.log_every_n_steps=1", "data.num_workers=0"]


def test_cifar10_config_parses_and_trains_two_steps(tmp_path: Path, capsys):
    import torchrepro.recipes  # noqa: F401

    root = write_cifar10(tmp_path / "cifar", per_batch=8, n_test=12)
    cfg = resolve_config(REPO / "configs" / "simclr_cifar10.yaml", [f"data.root={root}"])
    assert (cfg.data.batch_size, cfg.optim.name, cfg.optim.lr, cfg.trainer.max_epochs) == (512, "sgd", 0.24, 800)
    assert (cfg.model.arch, cfg.model.width, cfg.model.proj_dim, cfg.data.augment.blur_p) == ("resnet18", 64, 128, 0.0)
    code, out, err = run_main(capsys, "train", REPO / "configs" / "simclr_cifar10.yaml", f"data.root={root}", *TINY,
                              "data.batch_size=8", "data.num_workers=0", "trainer.max_steps=2",
                              "trainer.accelerator=cpu", f"run.dir={tmp_path / 'run'}")
    assert code == 0, err[-3000:]
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert "test/knn_top1=" in out and "test/baseline_pixels_linear_top1=" in out


def test_fashion_mnist_run_reports_trained_untrained_and_pixel_scores(tmp_path: Path, capsys):
    root = write_fashion_mnist(tmp_path / "fmnist", 60, 20, gz=False)  # plain (not gzipped) IDX files
    code, out, err = run_main(capsys, "train", REPO / "configs" / "simclr_fashion_mnist.yaml", f"data.root={root}",
                              *TINY, "data.batch_size=8", "trainer.max_epochs=1", "trainer.validate_before_fit=true",
                              f"run.dir={tmp_path / 'run'}")
    assert code == 0, err[-3000:]
    untrained = dict(kv.split("=") for kv in out.split("untrained model: ")[1].splitlines()[0].split(", "))
    # the untrained baseline is the very initialisation the engine scored before training
    assert untrained["baseline_untrained_knn_top1"] == untrained["knn_top1"]
    assert untrained["baseline_untrained_linear_top1"] == untrained["linear_top1"]
    test_line = next(line for line in out.splitlines() if line.startswith("test (held-out"))
    for key in ("test/knn_top1", "test/linear_top1", "test/baseline_untrained_knn_top1",
                "test/baseline_untrained_linear_top1", "test/baseline_pixels_knn_top1",
                "test/baseline_pixels_linear_top1"):
        assert f"{key}=" in test_line
    for figure in ("curves.png", "embedding_pca.png", "neighbours.png"):
        assert (tmp_path / "run" / figure).is_file(), figure


def test_untrained_encoder_is_the_seeded_initialisation_and_not_saved():
    import torchrepro.recipes  # noqa: F401
    from torchrepro.simclr.task import SimCLRTask

    cfg = resolve_config(REPO / "configs" / "simclr_synthetic.yaml", ["model.width=4"])
    torch.manual_seed(1)
    a = SimCLRTask(cfg)
    torch.manual_seed(2)  # another global stream (another DDP rank's seed): the same weights
    b = SimCLRTask(cfg)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert not any("untrained" in k for k in a.state_dict())
    with torch.no_grad():
        for p in a.net.encoder.parameters():
            p.add_(1.0)
    assert all(torch.equal(p, q) for p, q in zip(a._untrained[0].parameters(), b.net.encoder.parameters()))
    assert a.net.encoder.out_features == 32  # 8 × width for ResNet-18



def test_channels_last_encoder_computes_the_same_features_and_shares_checkpoints():
    from torchrepro.simclr.model import SimCLRNet

    torch.manual_seed(0)
    plain = SimCLRNet("resnet18", 1, True, 8, 16, 8).eval()
    nhwc = SimCLRNet("resnet18", 1, True, 8, 16, 8, channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    assert nhwc.encoder.trunk[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(nhwc.project(x), plain.project(x), atol=1e-4, rtol=1e-4)

def test_linear_probe_and_knn_on_separable_features():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=gen) * 4
    bank_y, y = torch.arange(200) % 4, torch.arange(80) % 4
    bank = centres[bank_y] + torch.randn(200, 16, generator=gen)
    queries = centres[y] + torch.randn(80, 16, generator=gen)
    scores = knn_and_linear(bank, bank_y, queries, y, 4, knn_k=20, knn_temperature=0.1, linear_steps=50,
                            linear_weight_decay=1e-4)
    assert scores["knn_top1"] > 0.95 and scores["linear_top1"] > 0.95
    assert torch.equal(linear_probe(bank, bank_y, queries, 4, 50), linear_probe(bank, bank_y, queries, 4, 50))


@pytest.mark.parametrize("override, message", [
    ("model.temperature=-0.1", "'model.temperature' must be > 0"),
    ("data.batch_size=1", "a batch of one has no negatives"),
    ("data.augment.crop_scale=[0.5, 0.2]", "'data.augment.crop_scale' needs two numbers [min, max]"),
    ("data.augment.jitter_p=1.5", "'data.augment.jitter_p' is a probability"),
])
def test_config_errors(override: str, message: str):
    import torchrepro.recipes  # noqa: F401
    from torchrepro.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        resolve_config(REPO / "configs" / "simclr_synthetic.yaml", [override])
    assert message in str(err.value)


def test_nhwc_trunk_below_eight_channels_is_refused_before_it_can_crash(tmp_path):
    import torchrepro.recipes  # noqa: F401
    from torchrepro.core.errors import ConfigError

    root = f"data.root={tmp_path}"  # the config's Debian folder need not be installed: only the width is checked
    with pytest.raises(ConfigError, match="needs model.width >= 8, got width 4"):
        resolve_config(REPO / "configs" / "simclr_fashion_mnist.yaml", ["model.width=4", root])
    assert resolve_config(REPO / "configs" / "simclr_fashion_mnist.yaml", ["model.width=8", root]).model.channels_last
