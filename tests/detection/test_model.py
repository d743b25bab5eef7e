"""Detectors: the seed's multi-box head on ResNet34 (shapes, anchor order, trunk size, a short training run),
torchvision's SSD300 / SSDlite behind the same contract ([0, 1] images of side S, pixel boxes), the factory."""

import pytest
import torch
import torchvision

from torchrepro.core.errors import CheckpointError, ConfigError, DataError
from tests.detection.test_boxes import per_image_reference
from torchrepro.detection.model import OutConv, _flatten, build_detector, seed_grids


def _targets(*boxes_labels):
    return [{"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(l, dtype=torch.int64)}
            for b, l in boxes_labels]


def _check_detections(dets, n_images, size, num_classes):
    assert isinstance(dets, list) and len(dets) == n_images
    for d in dets:
        assert set(d) == {"boxes", "scores", "labels"}
        m = d["boxes"].shape[0]
        assert d["boxes"].shape == (m, 4) and d["scores"].shape == (m,) and d["labels"].dtype == torch.int64
        if m:
            assert d["boxes"].min() >= 0 and d["boxes"].max() <= size
            assert d["labels"].min() >= 1 and d["labels"].max() <= num_classes


# ---------------------------------------------------------------------------------------------- the seed
def test_seed_head_outputs_189_anchors_on_224():
    torch.manual_seed(0)
    model = build_detector("seed_resnet34", num_classes=20, image_size=224).eval()
    assert model.grids == (4, 2, 1) and len(model.anchors) == 189
    with torch.no_grad():
        cls, box = model.head_outputs(torch.rand(2, 3, 224, 224))
        dets = model(torch.rand(1, 3, 224, 224))
    assert cls.shape == (2, 189, 21) and box.shape == (2, 189, 4)
    _check_detections(dets, 1, 224, 20)
    # the class convs start at the seed's bias of -4, the box convs at 0
    for out in (model.head.out1, model.head.out2, model.head.out3):
        assert torch.all(out.cls.bias == -4.0) and out.cls.out_channels == 9 * 21 and out.box.out_channels == 36


def test_seed_trunk_has_resnet34s_parameters_without_fc():
    ref = torchvision.models.resnet34(weights=None)
    expected = sum(p.numel() for p in ref.parameters()) - sum(p.numel() for p in ref.fc.parameters())
    model = build_detector("seed_resnet34", 20, 224)
    assert sum(p.numel() for p in model.trunk.parameters()) == expected == 21_284_672


def test_head_flattening_matches_the_anchor_order():
    # channel a·F + f at cell (i, j) of a g×g map must become anchor (i·g + j)·k + a, feature f
    k, feats, g = 3, 5, 2
    x = torch.arange(2 * k * feats * g * g, dtype=torch.float32).view(2, k * feats, g, g)
    flat = _flatten(x, feats)
    assert flat.shape == (2, g * g * k, feats)
    for i in range(g):
        for j in range(g):
            for a in range(k):
                assert torch.equal(flat[1, (i * g + j) * k + a], x[1, a * feats:(a + 1) * feats, i, j])
    out = OutConv(k, 8, num_classes=4, class_bias=-2.0)
    cls, box = out(torch.randn(1, 8, g, g))
    assert cls.shape == (1, g * g * k, 5) and box.shape == (1, g * g * k, 4)


def test_seed_grids_follow_the_feature_maps():
    assert seed_grids(224) == seed_grids(193) == seed_grids(256) == (4, 2, 1)
    assert seed_grids(64) == (1, 1, 1) and seed_grids(300) == (5, 3, 2)
    model = build_detector("seed_resnet34", 3, 300, width=8, head_channels=16).eval()
    with torch.no_grad():
        cls, _ = model.head_outputs(torch.rand(1, 3, 300, 300))
    assert cls.shape[1] == len(model.anchors) == (25 + 9 + 4) * 9


def test_trunk_grid_adds_the_trunk_map_first():
    """SSD-style fourth grid (§2.1): the 7×7 trunk map at 224, its 49·9 anchors ahead of the seed's 189, and the
    seed's three grids unchanged behind it (same weights → the same outputs as the plain seed head)."""
    assert seed_grids(224, trunk_grid=True) == (7, 4, 2, 1) and seed_grids(300, trunk_grid=True) == (10, 5, 3, 2)
    torch.manual_seed(0)
    four = build_detector("seed_resnet34", 3, 224, width=8, head_channels=16, trunk_grid=True).eval()
    three = build_detector("seed_resnet34", 3, 224, width=8, head_channels=16).eval()
    missing, unexpected = three.load_state_dict(four.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("head.out0.") for k in unexpected)
    images = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        (cls4, box4), (cls3, box3) = four.head_outputs(images), three.head_outputs(images)
    assert four.grids == (7, 4, 2, 1) and len(four.anchors) == (49 + 21) * 9 == cls4.shape[1] == box4.shape[1]
    assert torch.equal(cls4[:, 49 * 9:], cls3) and torch.equal(box4[:, 49 * 9:], box3)
    assert torch.equal(four.anchors.cxcywh[49 * 9:], three.anchors.cxcywh)
    assert torch.allclose(four.anchors.cxcywh[0], torch.tensor([0.5 / 7, 0.5 / 7, 0.7 / 7, 0.7 / 7]))


@pytest.mark.parametrize("loss", ["seed", "ssd", "focal"])
def test_seed_detector_with_each_loss_trains_and_detects(loss):
    torch.manual_seed(0)
    model = build_detector("seed_resnet34", 3, 224, loss=loss, width=8, head_channels=16)
    targets = _targets(([[10, 20, 120, 150], [100, 100, 220, 200]], [1, 3]), ([], []))
    out = model.train()(torch.rand(2, 3, 224, 224), targets)
    assert set(out) == {"bbox_regression", "classification"}
    sum(out.values()).backward()
    assert all(torch.isfinite(v) for v in out.values())
    # the 4×4 grid's anchors are too small for these boxes under IoU > 0.5: check the three grids together
    head = model.head
    assert sum(o.box.weight.grad.abs().sum() for o in (head.out1, head.out2, head.out3)) > 0
    with torch.no_grad():
        _check_detections(model.eval()(torch.rand(2, 3, 224, 224)), 2, 224, 3)


@pytest.mark.parametrize("loss", ["seed", "ssd"])
def test_seed_detections_equal_a_per_image_decode_and_nms_loop(loss):
    model = build_detector("seed_resnet34", 4, 224, loss=loss, width=8, head_channels=16, topk=50,
                           max_detections=30)
    gen = torch.Generator().manual_seed(0)
    cls, act = torch.randn(3, 189, 5, generator=gen) * 3, torch.randn(3, 189, 4, generator=gen)
    ours = model.detections(cls, act)
    cx, cy, w, h = model.anchors.cxcywh.unbind(1)
    grid = model.anchors.grid_size[:, 0]
    boxes, scores = [], []
    for i in range(3):  # decode one image at a time, written out
        if loss == "seed":  # tanh: centre ± half a cell, size × 0.5..1.5
            t = torch.tanh(act[i])
            pcx, pcy = cx + t[:, 0] / 2 * grid, cy + t[:, 1] / 2 * grid
            pw, ph = (t[:, 2] / 2 + 1) * w, (t[:, 3] / 2 + 1) * h
            scores.append(torch.sigmoid(cls[i, :, 1:]))
        else:  # variances 0.1 / 0.2
            pcx, pcy = cx + act[i, :, 0] * 0.1 * w, cy + act[i, :, 1] * 0.1 * h
            pw, ph = w * torch.exp(act[i, :, 2] * 0.2), h * torch.exp(act[i, :, 3] * 0.2)
            scores.append(torch.softmax(cls[i], dim=-1)[:, 1:])
        box = torch.stack((pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2), 1) * 224
        boxes.append(box.clamp(0, 224))
    ref = per_image_reference(boxes, scores, 0.01, 50, 0.45, 30)
    for o, r in zip(ours, ref):
        assert torch.equal(o["labels"], r["labels"]) and torch.equal(o["scores"], r["scores"])
        torch.testing.assert_close(o["boxes"], r["boxes"], atol=1e-4, rtol=0)
        assert len(o["scores"]) == 30


def test_seed_normalises_inside_and_checks_its_inputs():
    model = build_detector("seed_resnet34", 3, 224, width=8, head_channels=16)
    torch.testing.assert_close(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    with pytest.raises(ValueError, match=r"\[B, 3, 224, 224\]"):
        model.eval()(torch.rand(1, 3, 200, 200))
    with pytest.raises(DataError, match="1..3"):
        model.train()(torch.rand(1, 3, 224, 224), _targets(([[0, 0, 5, 5]], [4])))
    with pytest.raises(DataError, match="1..3"):
        model.train()(torch.rand(1, 3, 224, 224), _targets(([[0, 0, 5, 5]], [0])))
    with pytest.raises(ValueError, match="target"):
        model.train()(torch.rand(1, 3, 224, 224))


def test_factory_errors():
    with pytest.raises(ConfigError, match="did you mean 'ssd300_vgg16'"):
        build_detector("ssd300_vgg", 3, 300)
    with pytest.raises(ConfigError, match="loss"):
        build_detector("seed_resnet34", 3, 224, loss="yolo", width=8)
    with pytest.raises(ConfigError, match="post-processing"):
        build_detector("ssdlite320_mobilenet_v3_large", 3, 320, loss="ssd")


COLOURS = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0]])


def coloured_rectangles(n, size, gen):
    """Grey noisy images, each with one rectangle whose colour is its class (1..3)."""
    images = (0.5 + 0.05 * torch.randn(n, 3, size, size, generator=gen)).clamp(0, 1)
    targets = []
    for i in range(n):
        w, h = ((0.25 + 0.5 * torch.rand(2, generator=gen)) * size).long().tolist()
        x0 = int(torch.randint(0, size - w + 1, (1,), generator=gen))
        y0 = int(torch.randint(0, size - h + 1, (1,), generator=gen))
        images[i, :, y0:y0 + h, x0:x0 + w] = COLOURS[i % 3, :, None, None]
        targets.append({"boxes": torch.tensor([[x0, y0, x0 + w, y0 + h]], dtype=torch.float32),
                        "labels": torch.tensor([i % 3 + 1])})
    return images, targets


def test_seed_head_learns_coloured_rectangles():
    # a narrow ResNet34 (width 8) and head (32 channels) at the seed's 224 input, so the 4×4/2×2/1×1 grids
    # are the seed's; 20 Adam steps on 8 images
    torch.manual_seed(0)
    images, targets = coloured_rectangles(8, 224, torch.Generator().manual_seed(0))
    model = build_detector("seed_resnet34", 3, 224, width=8, head_channels=32).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3]), losses


# ------------------------------------------------------------------------------------- torchvision's SSDs
@pytest.fixture(scope="module")
def ssd300():
    torch.manual_seed(0)
    return build_detector("ssd300_vgg16", num_classes=2, image_size=300)


def test_ssd300_builds_and_returns_losses_and_detections(ssd300):
    net = ssd300.net
    assert net.head.classification_head.num_columns == 3  # C + 1
    assert ssd300.native_size == (300, 300)
    # the shared post-processing (SSD §3.7 / torchvision's SSD300 values)
    assert (net.score_thresh, net.topk_candidates, net.nms_thresh, net.detections_per_img) == (0.01, 400, 0.45, 200)
    images = torch.rand(1, 3, 300, 300)
    out = ssd300.train()(images, _targets(([[30, 40, 200, 260]], [2])))
    assert set(out) == {"bbox_regression", "classification"} and all(torch.isfinite(v) for v in out.values())
    with torch.no_grad():
        _check_detections(ssd300.eval()(images), 1, 300, 2)


def test_ssd300_input_contract_at_its_native_size_is_normalisation_only(ssd300):
    # [0, 1] images in; torchvision's transform applies its own (Caffe VGG) normalisation and, at S = 300,
    # no resize: the recipe must not normalise
    x = torch.rand(2, 3, 300, 300)
    transformed = ssd300.net.transform.eval()(list(x))[0].tensors
    mean = torch.tensor([0.48235, 0.45882, 0.40784]).view(1, 3, 1, 1)
    torch.testing.assert_close(transformed, (x - mean) * 255.0, rtol=1e-5, atol=1e-4)


def test_ssdlite_at_another_size_resizes_inside_and_answers_in_input_pixels():
    torch.manual_seed(0)
    model = build_detector("ssdlite320_mobilenet_v3_large", num_classes=3, image_size=64)
    assert model.native_size == (320, 320)
    assert (model.net.score_thresh, model.net.nms_thresh) == (0.01, 0.45)  # not SSDlite's 0.001 / 0.55
    images = torch.rand(2, 3, 64, 64)
    out = model.train()(images, _targets(([[5, 6, 40, 50]], [1]), ([], [])))  # BN needs 2 images
    assert set(out) == {"bbox_regression", "classification"} and all(torch.isfinite(v) for v in out.values())
    with torch.no_grad():
        dets = model.eval()(images)
    _check_detections(dets, 2, 64, 3)
    assert max(d["boxes"].max() for d in dets) > 32  # in 64-pixel units, not 320
    # at S = 320 the transform is the identity resize plus SSDlite's [0, 1] → [-1, 1]
    x = torch.rand(1, 3, 320, 320)
    transformed = model.net.transform(list(x))[0].tensors
    torch.testing.assert_close(transformed, (x - 0.5) / 0.5)


def test_torchvision_detector_loads_a_local_state_dict_with_another_class_count(tmp_path):
    torch.manual_seed(0)
    source = build_detector("ssdlite320_mobilenet_v3_large", num_classes=90, image_size=320)
    path = tmp_path / "coco.pth"
    torch.save(source.net.state_dict(), path)
    target = build_detector("ssdlite320_mobilenet_v3_large", num_classes=3, image_size=320, pretrained=str(path))
    src, dst = source.net.state_dict(), target.net.state_dict()
    assert torch.equal(src["backbone.features.0.0.0.weight"], dst["backbone.features.0.0.0.weight"])
    assert all(torch.equal(src[k], v) for k, v in dst.items() if not k.startswith("head.classification_head."))
    cls_keys = [k for k in dst if k.startswith("head.classification_head.") and dst[k].shape != src[k].shape]
    assert cls_keys  # the class head keeps its own shape (and initialisation)
    with pytest.raises(CheckpointError, match="does not exist"):
        build_detector("ssdlite320_mobilenet_v3_large", 3, 320, pretrained=str(tmp_path / "missing.pth"))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="does not match"):
        build_detector("ssdlite320_mobilenet_v3_large", 3, 320, pretrained=str(tmp_path / "bad.pth"))
