"""A short real training run on generated road scenes must actually learn.

ResNet18 at 48×48 for 6 epochs in batches of 16 on 600 generated scenes, validated every epoch on 150 held-out
scenes (which choose best.ckpt) and tested once, with that checkpoint, on 150 other scenes. Chance is 1/3; for
n=150 the probability of an accuracy above 0.5 by guessing is ~1e-5 (binomial), so passing means learning.
Batches of 16 learn more per image seen than the recipe's 32: 6 epochs (228 steps, 3,600 images) reached a
final validation accuracy of 0.71 / 0.67 and a test accuracy of 0.62 / 0.67 (seeds 0 / 1), where batches of 32
(seed 0) passed 0.5 only at epoch 5 and needed 10 epochs (6,000 images) for a margin (0.71 / 0.70).
The untrained model is scored first by the same run (``validate_before_fit``) and must be at chance level.
Five epochs (2026-12-02, same settings otherwise) fell to a final validation accuracy of 0.57 / 0.61 and a test
accuracy of 0.60 / 0.56 (seeds 0 / 1): too close to 0.5 for a margin that is not luck, so the run keeps six.
It trains in-process (``torchrepro.cli.main``, the same entry point; tests/test_contract.py covers the CLI
subprocess), which spares one interpreter start-up.
"""

from __future__ import annotations

import json

from tests.helpers import REPO, run_main


def test_training_beats_the_untrained_model_on_held_out_scenes(tmp_path, capsys):
    code, out, err = run_main(
        capsys, "train", REPO / "configs" / "driving_synthetic.yaml", f"run.dir={tmp_path / 'run'}",
        f"data.synthetic_dir={tmp_path / 'data'}", "data.synthetic_train=600", "data.synthetic_val=150",
        "data.synthetic_test=150", "data.image_size=48", "data.batch_size=16", "model.arch=resnet18",
        "trainer.max_epochs=6", "checkpoint.every_n_steps=0", "trainer.progress_bar=false")
    assert code == 0, err[-3000:]
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    untrained = next(h for h in history if h["stage"] == "untrained")
    fitted = [h for h in history if h["stage"] == "fit"]
    assert abs(untrained["accuracy"] - 1 / 3) < 0.1
    assert fitted[-1]["accuracy"] > 0.5, [round(h["accuracy"], 3) for h in fitted]
    assert fitted[-1]["train_loss"] < 0.8 * fitted[0]["train_loss"]
    assert fitted[-1]["val_loss"] < untrained["val_loss"]
    assert "untrained model: accuracy=0.3" in out
    tested = [h for h in history if h["stage"] == "test"]
    assert len(tested) == 1 and tested[0]["test/accuracy"] > 0.5, tested
    assert out.count("test (held-out, scored once with best.ckpt): ") == 1, out[-2000:]
    for name in ("confusion_matrix.png", "curves.png", "config.yaml"):
        assert (tmp_path / "run" / name).is_file()
