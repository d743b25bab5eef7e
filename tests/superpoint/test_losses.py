"""SuperPoint's losses (§3.4, Eq. 2–6) against hand-made cases and plain re-implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torchrepro.superpoint.losses import (cell_centres, cell_labels, cell_valid, descriptor_hinge_loss,
                                         descriptor_sparse_loss, detector_loss)


def test_cell_labels_hand_case_and_random_tie_break() -> None:
    points = [torch.tensor([[3.0, 2.0], [12.2, 9.6]]), torch.zeros(0, 2)]
    labels = cell_labels(points, 16, 24)
    expected = torch.full((2, 2, 3), 64)
    expected[0, 0, 0] = 2 * 8 + 3  # (x 3, y 2) → cell (0, 0), bin row 2 col 3
    expected[0, 1, 1] = 2 * 8 + 4  # (12.2, 9.6) rounds to (12, 10) → cell (1, 1), bin row 2 col 4
    assert torch.equal(labels, expected)
    two = [torch.tensor([[1.0, 1.0], [6.0, 5.0]])]  # both in cell (0, 0)
    seen = {cell_labels(two, 8, 8, torch.Generator().manual_seed(s))[0, 0, 0].item() for s in range(40)}
    assert seen == {1 * 8 + 1, 5 * 8 + 6}
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(cell_labels(two, 8, 8, g1), cell_labels(two, 8, 8, g2))


def test_cell_valid_needs_every_pixel() -> None:
    valid = torch.ones(1, 16, 16, dtype=torch.bool)
    valid[0, 15, 0] = False
    assert cell_valid(valid).tolist() == [[[True, True], [False, True]]]


def test_detector_loss_is_the_mean_cross_entropy_over_valid_cells() -> None:
    semi = torch.randn(2, 65, 3, 4)
    labels = torch.randint(0, 65, (2, 3, 4))
    valid = torch.rand(2, 3, 4) > 0.3
    per_cell = F.cross_entropy(semi.permute(0, 2, 3, 1)[valid], labels[valid])
    torch.testing.assert_close(detector_loss(semi, labels, valid), per_cell)
    torch.testing.assert_close(detector_loss(semi, labels), F.cross_entropy(semi, labels))


def _hinge_reference(desc, desc_w, homography, valid_w, mp=1.0, mn=0.2, lam=250.0):
    """Eq. 4–6 with explicit loops over the cell pairs of one image."""
    d, hc, wc = desc.shape
    pos = neg = 0.0
    count = 0
    for i in range(hc):
        for j in range(wc):
            p = torch.tensor([8 * j + 3.5, 8 * i + 3.5, 1.0], dtype=torch.float64)
            q = homography.double() @ p
            q = q[:2] / q[2]
            for k in range(hc):
                for m in range(wc):
                    if not valid_w[k, m]:
                        continue
                    s = float(torch.linalg.norm(q - torch.tensor([8 * m + 3.5, 8 * k + 3.5],
                                                                 dtype=torch.float64)) <= 7.5)
                    dot = float(desc[:, i, j] @ desc_w[:, k, m])
                    pos += lam * s * max(0.0, mp - dot)
                    neg += (1 - s) * max(0.0, dot - mn)
                    count += 1
    return pos / count, neg / count


def test_descriptor_loss_equals_the_equations_written_as_loops() -> None:
    torch.manual_seed(0)
    desc = F.normalize(torch.randn(1, 16, 3, 4), dim=1)
    desc_w = F.normalize(torch.randn(1, 16, 3, 4), dim=1)
    homography = torch.tensor([[[1.0, 0.05, 6.0], [-0.02, 0.97, -3.0], [1e-4, 0.0, 1.0]]])
    valid = torch.rand(1, 3, 4) > 0.25
    out = descriptor_hinge_loss(desc, desc_w, homography, valid)
    pos, neg = _hinge_reference(desc[0], desc_w[0], homography[0], valid[0])
    torch.testing.assert_close(out["positive"].item(), pos, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(out["negative"].item(), neg, rtol=1e-5, atol=1e-7)


def test_identical_descriptors_under_identity_have_no_positive_loss() -> None:
    desc = F.normalize(torch.randn(1, 8, 2, 2), dim=1)
    out = descriptor_hinge_loss(desc, desc, torch.eye(3)[None], torch.ones(1, 2, 2, dtype=torch.bool))
    assert out["positive"].item() < 1e-5
    assert out["positive_pairs"].item() == 1.0  # each cell's only correspondence is itself: neighbours are 8 px away, beyond 7.5
    assert cell_centres(1, 2).tolist() == [[3.5, 3.5], [11.5, 3.5]]


def _one_hot_descriptors(hc: int, wc: int) -> torch.Tensor:
    """[1, Hc·Wc, Hc, Wc]: cell k's descriptor is the k-th basis vector, so two cells' dot is 1 iff they are the same."""
    return torch.eye(hc * wc).reshape(1, hc * wc, hc, wc)


def test_sparse_loss_pairs_each_cell_with_the_cell_its_centre_warps_to() -> None:
    """A translation by one cell to the right: cell (i, j) of the image is cell (i, j + 1) of the warp. Descriptors
    arranged so exactly those pairs match give no loss at all: every drawn match is right (positive 0) and no
    non-match is the match itself (negative 0); arranged for a two-cell shift they pay the full margin."""
    hc, wc = 3, 5
    basis = _one_hot_descriptors(hc, wc)
    shift_one = torch.roll(basis, 1, dims=3)  # the warp's cell (i, j + 1) carries the image's (i, j) descriptor
    h = torch.tensor([[[1.0, 0.0, 8.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    valid = torch.ones(1, hc, wc, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    out = descriptor_sparse_loss(basis, shift_one, h, valid, g, matches=50, non_matches=20, lambda_d=3.0)
    assert out["positive"].item() == 0.0 and out["negative"].item() == 0.0
    assert out["positive_pairs"].item() == pytest.approx((wc - 1) / wc)  # the last column leaves the warp
    wrong = descriptor_sparse_loss(basis, torch.roll(basis, 2, dims=3), h, valid, g, matches=50, non_matches=20,
                                   lambda_d=3.0)
    assert wrong["positive"].item() == 3.0  # λ_d · (m_p − 0) on every match


def test_sparse_loss_never_draws_a_match_whose_warped_cell_is_invalid() -> None:
    """Column 2 of the warp is masked out: the image's column 1 (whose match it is) must never be drawn, so
    descriptors that would make exactly those matches wrong cost nothing."""
    hc, wc = 2, 4
    basis = _one_hot_descriptors(hc, wc)
    warped = torch.roll(basis, 1, dims=3)
    warped[..., 2] = 0.0  # column 2 of the warp matches nothing
    valid = torch.ones(1, hc, wc, dtype=torch.bool)
    valid[0, :, 2] = False
    h = torch.tensor([[[1.0, 0.0, 8.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    out = descriptor_sparse_loss(basis, warped, h, valid, torch.Generator().manual_seed(1), matches=100)
    assert out["positive"].item() == 0.0


def test_sparse_negative_term_is_the_hard_negative_mean() -> None:
    """Every cell with the same descriptor: each non-match costs 1 − m_n, and the term is their sum over their count
    plus one (the reference's normaliser), so it equals (1 − m_n) · n / (n + 1) with n the drawn non-matches of the
    image. Under the identity on a 1×3 grid, the non-matches of a cell are the two others, all of them paying."""
    desc = F.normalize(torch.ones(1, 4, 1, 3), dim=1)
    out = descriptor_sparse_loss(desc, desc, torch.eye(3)[None], torch.ones(1, 1, 3, dtype=torch.bool),
                                 torch.Generator().manual_seed(2), matches=6, non_matches=30, neg_margin=0.2)
    assert out["positive"].item() < 1e-6
    # random non-match candidates that hit the match's own cell are excluded, so the count n is at most 6 · 30
    n_paying = round(out["negative"].item() / (0.8 - out["negative"].item()))  # x = 0.8 n / (n + 1) ⇔ n = x / (0.8 − x)
    torch.testing.assert_close(out["negative"].item(), 0.8 * n_paying / (n_paying + 1))
    assert 6 * 30 * 2 / 3 * 0.7 < n_paying <= 6 * 30  # about two in three candidates are another cell


def test_sparse_loss_is_seeded_and_differentiable() -> None:
    desc = F.normalize(torch.randn(2, 16, 4, 5), dim=1).requires_grad_()
    desc_w = F.normalize(torch.randn(2, 16, 4, 5), dim=1)
    h = torch.tensor([[1.0, 0.05, 4.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    valid = torch.ones(2, 4, 5, dtype=torch.bool)
    runs = [descriptor_sparse_loss(desc, desc_w, h, valid, torch.Generator().manual_seed(7), matches=30)
            for _ in range(2)]
    assert torch.equal(runs[0]["loss"], runs[1]["loss"])
    runs[0]["loss"].backward()
    assert desc.grad is not None and desc.grad.abs().sum() > 0
    none = descriptor_sparse_loss(desc, desc_w, torch.eye(3).expand(2, 3, 3),
                                  torch.zeros(2, 4, 5, dtype=torch.bool))
    assert none["loss"].item() == 0.0  # no valid correspondence anywhere: a zero loss, not NaN
