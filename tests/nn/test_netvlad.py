"""NetVLAD (Arandjelović et al., CVPR 2016, §3 / Eq. 4): shapes, a loop reference, k-means init, grads, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchrepro.core.errors import DataError
from torchrepro.nn.netvlad import NetVLAD


def reference_netvlad(x: torch.Tensor, layer: NetVLAD) -> torch.Tensor:
    """Straightforward triple loop over samples, clusters and spatial positions (float64)."""
    x = x.double()
    w = layer.conv.weight.detach().double().view(layer.num_clusters, layer.dim)
    b = layer.conv.bias.detach().double()
    c = layer.centroids.detach().double()
    n, d, h, wd = x.shape
    k_count = layer.num_clusters
    out = torch.zeros(n, k_count * d, dtype=torch.float64)
    for s in range(n):
        v = torch.zeros(k_count, d, dtype=torch.float64)
        for k in range(k_count):
            for yy in range(h):
                for xx in range(wd):
                    xi = x[s, :, yy, xx]
                    if layer.normalize_input:
                        xi = xi / math.sqrt(float((xi * xi).sum()))
                    logits = [float(w[j] @ xi + b[j]) for j in range(k_count)]
                    mx = max(logits)
                    exps = [math.exp(lg - mx) for lg in logits]
                    a_ik = exps[k] / sum(exps)
                    v[k] += a_ik * (xi - c[k])
        for k in range(k_count):
            v[k] = v[k] / math.sqrt(float((v[k] * v[k]).sum()))
        flat = v.reshape(-1)
        out[s] = flat / math.sqrt(float((flat * flat).sum()))
    return out


def test_output_shape_and_unit_norm():
    torch.manual_seed(0)
    layer = NetVLAD(num_clusters=4, dim=8)
    out = layer(torch.randn(3, 8, 5, 4))
    assert out.shape == (3, 4 * 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("normalize_input", [True, False])
def test_matches_triple_loop_reference(normalize_input):
    torch.manual_seed(1)
    layer = NetVLAD(num_clusters=4, dim=8, alpha=1.0, normalize_input=normalize_input)
    with torch.no_grad():
        layer.conv.weight.normal_()  # make the assignment non-trivial
        layer.conv.bias.normal_()
    x = torch.randn(2, 8, 3, 3)
    out = layer(x).double()
    ref = reference_netvlad(x, layer)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def _blobs(rng: np.random.Generator, d: int = 16, per: int = 200, noise: float = 0.05):
    centres = np.zeros((4, d), dtype=np.float32)
    for j in range(4):
        centres[j, 2 * j] = 1.0  # orthogonal unit vectors: well separated on the sphere
    labels = np.repeat(np.arange(4), per)
    pts = centres[labels] + noise * rng.standard_normal((4 * per, d)).astype(np.float32)
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    perm = rng.permutation(len(pts))
    return centres, pts[perm].astype(np.float32), labels[perm]


def test_init_from_features_recovers_blobs():
    rng = np.random.default_rng(0)
    centres, pts, labels = _blobs(rng)
    torch.manual_seed(0)
    layer = NetVLAD(num_clusters=4, dim=16, alpha=100.0)
    returned = layer.init_from_features(pts * 3.0, seed=0)  # scale must not matter: features are L2-normalised
    assert returned.shape == (4, 16)

    with torch.no_grad():
        a = layer.soft_assign(torch.from_numpy(pts)[:, :, None, None])  # [M, K, 1]
    assign = a[:, :, 0].argmax(dim=1).numpy()
    # Each blob goes mostly to one cluster, and the four clusters are distinct.
    majority = [np.bincount(assign[labels == j], minlength=4).argmax() for j in range(4)]
    assert len(set(majority)) == 4
    agreement = np.mean(assign == np.asarray(majority)[labels])
    assert agreement >= 0.95

    # Centroids are close to the blob centres, up to permutation (the same matching as the assignment).
    cents = layer.centroids.detach().numpy()
    for j in range(4):
        nearest = np.linalg.norm(cents - centres[j], axis=1).argmin()
        assert nearest == majority[j]
        assert np.linalg.norm(cents[nearest] - centres[j]) < 0.05

    # Conv set from the paper's exp(-alpha ||x - c_k||^2): w = 2 alpha c, b = -alpha ||c||^2.
    c = torch.from_numpy(returned)
    torch.testing.assert_close(layer.conv.weight.view(4, 16), 200.0 * c)
    torch.testing.assert_close(layer.conv.bias, -100.0 * (c * c).sum(1))


def test_init_soft_assign_equals_distance_softmax():
    rng = np.random.default_rng(1)
    _, pts, _ = _blobs(rng, per=50)
    layer = NetVLAD(num_clusters=4, dim=16, alpha=2.0)
    layer.init_from_features(pts, seed=3)
    x = torch.from_numpy(pts[:20])
    with torch.no_grad():
        a = layer.soft_assign(x[:, :, None, None])[:, :, 0]
    d2 = torch.cdist(x, layer.centroids.detach()).pow(2)
    torch.testing.assert_close(a, torch.softmax(-2.0 * d2, dim=1), atol=1e-5, rtol=0)


def test_gradients_reach_all_parameters():
    torch.manual_seed(2)
    layer = NetVLAD(num_clusters=4, dim=8)
    out = layer(torch.randn(2, 8, 3, 3))
    (out * torch.randn_like(out)).sum().backward()
    for name in ("conv.weight", "conv.bias", "centroids"):
        grad = dict(layer.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_gradients_from_plain_sum():
    torch.manual_seed(3)
    layer = NetVLAD(num_clusters=4, dim=8, alpha=1.0)
    layer(torch.randn(2, 8, 3, 3)).sum().backward()
    assert layer.conv.weight.grad.abs().sum() > 0
    assert layer.conv.bias.grad.abs().sum() > 0
    assert layer.centroids.grad.abs().sum() > 0


def test_seed_head_parameters_and_descriptor_layout():
    # The seed's head: K = 32 clusters over D = 512 ResNet34 layer4 channels -> a 16,384-d descriptor.
    torch.manual_seed(4)
    layer = NetVLAD(num_clusters=32, dim=512)
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert shapes == {"conv.weight": (32, 512, 1, 1), "conv.bias": (32,), "centroids": (32, 512)}
    assert sum(p.numel() for p in layer.parameters()) == 32800  # 32*512 (1x1 conv) + 32 (bias) + 32*512
    out = layer(torch.randn(2, 512, 3, 2))
    assert out.shape == (2, 16384)
    # Intra-normalisation makes every cluster's 512-d block unit length; the final L2 over 32 such blocks
    # then scales each to 1/sqrt(32) (laid out cluster-major: block k is out[:, 512k : 512(k+1)]).
    torch.testing.assert_close(out.view(2, 32, 512).norm(dim=2), torch.full((2, 32), 32**-0.5), atol=1e-5, rtol=0)


def test_init_errors():
    layer = NetVLAD(num_clusters=8, dim=16)
    with pytest.raises(DataError, match="fewer than num_clusters=8"):
        layer.init_from_features(np.random.rand(5, 16).astype(np.float32))
    with pytest.raises(DataError, match="dimension 12 .*dim=16"):
        layer.init_from_features(np.random.rand(100, 12).astype(np.float32))
    with pytest.raises(DataError, match=r"shape \[M, D=16\]"):
        layer.init_from_features(torch.rand(100, 16, 1))
    bad = np.random.rand(100, 16).astype(np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(DataError, match="NaN"):
        layer.init_from_features(bad)


def test_forward_rejects_bad_input():
    layer = NetVLAD(num_clusters=4, dim=8)
    with pytest.raises(ValueError, match=r"\[N, D, H, W\]"):
        layer(torch.randn(2, 8, 9))
    with pytest.raises(ValueError, match="D=8"):
        layer(torch.randn(2, 6, 3, 3))
