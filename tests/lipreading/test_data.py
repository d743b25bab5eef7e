"""Mouth clips from GRID-layout fixtures: the crop, standardisation, flips, lengths, boxes files and bad pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchrepro.core.config import validate
from torchrepro.core.errors import DataError
from torchrepro.lipreading.config import LipData, LipModel
from torchrepro.lipreading.data import MAX_TEXT, LipClipDataset, box_from_points, collate, ctc_min_frames, mouth_clip
from torchrepro.lipreading.grid import read_speaker
from torchrepro.lipreading.vocabulary import encode_text
from tests.lipreading import GRID_BOX, SENTENCES, write_grid


def _data(**overrides) -> LipData:
    d = validate({"recipe": "lipnet", "data": {"source": "synthetic", **overrides}}, LipData, LipModel).data
    return d


@pytest.fixture(scope="module")
def grid_root(tmp_path_factory):
    return write_grid(tmp_path_factory.mktemp("grid"), {"s1": SENTENCES[:3]})


def test_fixed_crop_is_the_mouth_box_resized(grid_root):
    (u, *_) = read_speaker(grid_root, "s1")
    d = _data(input_size=[23, 50])
    crops = mouth_clip(u, LipClipDataset([u], d).alignment(0), d)
    assert crops.shape == (75, 23, 50) and crops.dtype == np.uint8
    # the fixture's mouth box is bright (200) with a darker bar (90) moving down; outside it is 40
    assert crops.mean() > 150
    bar_rows = [int(np.argmin(frame.mean(axis=1))) for frame in crops]
    assert bar_rows[0] < 4 and bar_rows[-1] > 18 and np.all(np.diff(bar_rows) >= 0)  # frame order kept


def test_sample_is_standardised_padded_and_encoded(grid_root):
    utterances = read_speaker(grid_root, "s1")
    d = _data(input_size=[24, 48], frames=80)
    sample = LipClipDataset(utterances, d)[0]
    clip, length = sample["clip"], sample["length"]
    assert clip.shape == (1, 80, 24, 48) and length == 75
    assert clip[0, :75].mean().abs() < 1e-4 and clip[0, :75].std() == pytest.approx(1, abs=1e-3)
    assert clip[0, 75:].abs().max() == 0
    assert sample["target"].tolist() == encode_text(LipClipDataset(utterances, d).text(0))


def test_flip_is_keyed_by_seed_epoch_and_index(grid_root):
    utterances = read_speaker(grid_root, "s1")
    d = _data(input_size=[24, 48])
    plain = LipClipDataset(utterances, d)[0]["clip"]
    train = LipClipDataset(utterances, d, seed=3, train=True)
    flips = []
    for epoch in range(12):
        clip = train[(epoch, 0)]["clip"]
        assert torch.equal(clip, plain) or torch.equal(clip, plain.flip(-1))
        assert torch.equal(clip, LipClipDataset(utterances, d, seed=3, train=True)[(epoch, 0)]["clip"])
        flips.append(torch.equal(clip, plain.flip(-1)))
    assert 0 < sum(flips) < 12


def test_collate_pads_targets_with_the_blank(grid_root):
    dataset = LipClipDataset(read_speaker(grid_root, "s1"), _data(input_size=[24, 48]))
    batch = collate([dataset[0], dataset[2]])
    assert batch["clip"].shape == (2, 1, 75, 24, 48) and batch["target"].shape == (2, MAX_TEXT)
    for row, index in enumerate((0, 2)):
        n = int(batch["target_length"][row])
        assert n == len(dataset.text(index)) and batch["target"][row, n:].abs().max() == 0
    assert batch["index"].tolist() == [0, 2]


def test_length_mismatch_error_or_pad(tmp_path):
    root = write_grid(tmp_path, {"s1": SENTENCES[:1]}, n_frames=72, align_frames=75)  # video 3 frames short
    (u,) = read_speaker(root, "s1")
    with pytest.raises(DataError, match="has 72 frames but its alignment .* covers 75.*length_mismatch=pad"):
        LipClipDataset([u], _data(input_size=[24, 48])).load(0)
    crops, _ = LipClipDataset([u], _data(input_size=[24, 48], length_mismatch="pad")).load(0)
    assert len(crops) == 75 and np.array_equal(crops[-1], crops[71])


def test_boxes_file_gives_per_frame_crops(tmp_path, grid_root):
    (u, *_) = read_speaker(grid_root, "s1")
    boxes = tmp_path / "boxes"
    (boxes / "s1").mkdir(parents=True)
    top, bottom, left, right = GRID_BOX
    rows = [(0, 40, 0, 80)] * 10 + [(top, bottom, left, right)] * 65  # first 10 frames: the dark corner
    np.savetxt(boxes / "s1" / f"{u.name}.txt", np.array(rows), fmt="%d")
    crops, _ = LipClipDataset([u], _data(input_size=[24, 48], boxes=str(boxes))).load(0)
    assert crops[10:].mean() > 150 and crops[:10, 20:, 40:].mean() < 60
    np.savetxt(boxes / "s1" / f"{u.name}.txt", np.array(rows[:70]), fmt="%d")
    with pytest.raises(DataError, match="hold 70 rows .* the video has 75 frames"):
        LipClipDataset([u], _data(input_size=[24, 48], boxes=str(boxes))).load(0)


def test_box_outside_the_frame_is_a_clear_error(grid_root):
    (u, *_) = read_speaker(grid_root, "s1")
    with pytest.raises(DataError, match="does not fit the 360x288 frames"):
        LipClipDataset([u], _data(mouth_box=[250, 300, 100, 200])).load(0)


def test_transcript_too_long_for_the_video_is_refused(tmp_path):
    root = write_grid(tmp_path, {"s1": SENTENCES[:1]}, n_frames=20)
    (u,) = read_speaker(root, "s1")
    assert ctc_min_frames(encode_text(SENTENCES[0])) == 21  # "bin blue at f two now": no doubled letter
    with pytest.raises(DataError, match="needs at least 21 frames for CTC .* the video has 20"):
        LipClipDataset([u], _data(input_size=[24, 48])).load(0)


def test_unreadable_video_is_named(tmp_path):
    root = write_grid(tmp_path, {"s1": SENTENCES[:1]})
    (u,) = read_speaker(root, "s1")
    u.source.write_bytes(b"not a video")
    with pytest.raises(DataError, match="bbaf2n.mpg"):
        LipClipDataset([u], _data()).load(0)


def test_box_from_mouth_landmarks_by_hand():
    points = np.array([[100, 210], [200, 210], [150, 200], [150, 220]], dtype=float)  # corners and lip middles
    # width 100 + 25 % each side = 150; height max(150 × 0.5, 20 × 1.5) = 75; centred on (150, 210)
    assert box_from_points(points, 0.5, (288, 360)).tolist() == [172, 247, 75, 225]
    # near the frame's edge the box is shifted inside, keeping its size
    assert box_from_points(points + [-90, 60], 0.5, (288, 360)).tolist() == [213, 288, 0, 150]


def test_landmarks_file_of_68_points_crops_the_mouth(tmp_path, grid_root):
    (u, *_) = read_speaker(grid_root, "s1")
    top, bottom, left, right = GRID_BOX
    mouth = np.array([[left + 30, top + 15], [right - 30, top + 15], [(left + right) / 2, top + 10],
                      [(left + right) / 2, top + 25]] * 5)  # 20 mouth points
    face = np.full((48, 2), 5.0)  # jaw, brows, nose, eyes: far from the mouth, in the dark corner
    line = " ".join(f"{v:g}" for v in np.concatenate([face, mouth]).ravel())
    boxes = tmp_path / "boxes"
    (boxes / "s1").mkdir(parents=True)
    (boxes / "s1" / f"{u.name}.txt").write_text((line + "\n") * 75)
    d = _data(input_size=[24, 48], boxes=str(boxes))
    crops, _ = LipClipDataset([u], d).load(0)
    expected = box_from_points(mouth, 0.5, (288, 360))
    b_top, b_bottom, b_left, b_right = expected
    assert top <= b_top and b_bottom <= bottom and left <= b_left and b_right <= right  # the face points were ignored
    assert crops.mean() > 150  # inside the fixture's bright mouth box
