"""`torchrepro tool superpoint-chain` end to end on tiny configs: MagicPoint on shapes, Homographic Adaptation of
its checkpoint as the labeler of the SuperPoint stage, the held-out HPatches table printed; a second call reuses
both finished runs."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import REPO, cli


def _tiny(path: Path, base: str, lines: list[str]) -> Path:
    path.write_text("\n".join([f"base: {REPO / 'configs' / base}", *lines]) + "\n")
    return path


def test_chain_runs_both_stages_and_prints_the_table(tmp_path: Path) -> None:
    magicpoint = _tiny(tmp_path / "mp.yaml", "magicpoint_shapes.yaml", [
        "trainer: {max_epochs: 1, progress_bar: false, validate_before_fit: false}",
        "data: {shapes_train: 2, shapes_val: 1, shapes_test: 1, image_size: [32, 48], train_crop: null, "
        "batch_size: 6, eval_batch_size: 4, synthetic_dir: shapes}",
        "model: {baselines: [shi]}"])
    superpoint = _tiny(tmp_path / "sp.yaml", "superpoint_photos.yaml", [
        "trainer: {max_epochs: 1, progress_bar: false, validate_before_fit: false}",
        "data: {crops_per_photo: 1, image_size: [32, 48], hpatches_size: [48, 64], batch_size: 7, "
        "synthetic_dir: photos, adaptation: {num_homographies: 2}}",
        "model: {baselines: [sift]}"])
    runs = tmp_path / "runs"
    res = cli("tool", "superpoint-chain", "--runs", runs, "--magicpoint", magicpoint, "--superpoint", superpoint,
              cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    export = next((tmp_path / "photos").glob("*/labels_magicpoint/export.json"))
    assert str((runs / "magicpoint" / "checkpoints" / "best.ckpt").resolve()) in export.read_text()
    assert "| SuperPoint (ours) |" in res.stdout and "| SIFT |" in res.stdout and "held-out" in res.stdout
    again = cli("tool", "superpoint-chain", "--runs", runs, "--magicpoint", magicpoint, "--superpoint", superpoint,
                cwd=tmp_path, timeout=300)
    assert again.returncode == 0 and again.stdout.count("reusing the finished run") == 2, again.stdout[-2000:]
