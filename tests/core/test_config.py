"""Config loading, base inheritance, overrides and validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import torchrepro.recipes  # noqa: F401
from torchrepro.core.config import apply_overrides, load_raw, parse_override
from torchrepro.core.errors import ConfigError
from torchrepro.core.registry import resolve_config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "driving_synthetic.yaml"


def test_overrides_are_yaml_typed():
    assert parse_override("trainer.max_epochs=3") == (["trainer", "max_epochs"], 3)
    assert parse_override("optim.lr=1e-4") == (["optim", "lr"], 1e-4)
    assert parse_override("model.freeze_backbone=true") == (["model", "freeze_backbone"], True)
    assert parse_override("data.root=/a/b") == (["data", "root"], "/a/b")
    assert parse_override("optim.group_lr={backbone: 0.1}") == (["optim", "group_lr"], {"backbone": 0.1})
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("trainer.max_epochs")


def test_override_applies_and_validates():
    cfg = resolve_config(DEMO, ["trainer.max_epochs=3", "optim.lr=1e-4", "data.batch_size=8"])
    assert cfg.trainer.max_epochs == 3 and cfg.optim.lr == 1e-4 and cfg.data.batch_size == 8
    assert isinstance(cfg.optim.lr, float)


def test_int_accepted_for_float_but_not_bool_for_int():
    assert resolve_config(DEMO, ["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(ConfigError, match="'trainer.max_epochs' expects int, got True"):
        resolve_config(DEMO, ["trainer.max_epochs=true"])


def test_base_inheritance(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("recipe: driving\nseed: 3\noptim: {lr: 0.5, momentum: 0.8}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\noptim: {lr: 0.1}\n")
    raw = load_raw(tmp_path / "b.yaml")
    assert raw == {"recipe": "driving", "seed": 3, "optim": {"lr": 0.1, "momentum": 0.8}}


def test_base_cycle_is_an_error(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_raw(tmp_path / "a.yaml")


def test_base_list_merges_left_to_right_then_the_file(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("recipe: driving\nseed: 1\noptim: {lr: 0.5, momentum: 0.8}\ntrainer: {max_epochs: 2}\n")
    (tmp_path / "b.yaml").write_text("seed: 2\noptim: {lr: 0.1}\n")
    (tmp_path / "c.yaml").write_text("base: [a.yaml, b.yaml]\noptim: {momentum: 0.7}\n")
    assert load_raw(tmp_path / "c.yaml") == {"recipe": "driving", "seed": 2, "trainer": {"max_epochs": 2},
                                             "optim": {"lr": 0.1, "momentum": 0.7}}
    (tmp_path / "d.yaml").write_text("base: [b.yaml, a.yaml]\n")  # order matters: the later file wins
    assert load_raw(tmp_path / "d.yaml")["seed"] == 1 and load_raw(tmp_path / "d.yaml")["optim"]["lr"] == 0.5
    (tmp_path / "e.yaml").write_text("base: []\nseed: 4\n")
    assert load_raw(tmp_path / "e.yaml") == {"seed": 4}


def test_base_paths_are_relative_to_the_file_naming_them(tmp_path: Path):
    (tmp_path / "_base_" / "runtime").mkdir(parents=True)
    (tmp_path / "_base_" / "runtime" / "cpu.yaml").write_text("trainer: {accelerator: cpu, max_epochs: 3}\n")
    (tmp_path / "_base_" / "recipe.yaml").write_text("base: runtime/cpu.yaml\nrecipe: driving\n")
    (tmp_path / "_base_" / "shared.yaml").write_text("base: [runtime/cpu.yaml]\ntrainer: {max_epochs: 5}\n")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "x.yaml").write_text("base: [../_base_/recipe.yaml, ../_base_/shared.yaml]\nseed: 9\n")
    # a diamond (cpu.yaml reached twice) is not a cycle
    assert load_raw(tmp_path / "configs" / "x.yaml") == {
        "recipe": "driving", "seed": 9, "trainer": {"accelerator": "cpu", "max_epochs": 5}}


def test_base_list_cycle_names_the_files(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("base: [ok.yaml, b.yaml]\n")
    (tmp_path / "ok.yaml").write_text("seed: 1\n")
    (tmp_path / "b.yaml").write_text("base: [a.yaml]\n")
    with pytest.raises(ConfigError, match=r"cycle 'a.yaml' -> 'b.yaml' -> 'a.yaml'") as err:
        load_raw(tmp_path / "a.yaml")
    assert "\n" not in str(err.value)
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    with pytest.raises(ConfigError, match="self.yaml' extends itself through 'base:'"):
        load_raw(tmp_path / "self.yaml")


def test_missing_base_names_the_file_and_key(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "ok.yaml").write_text("seed: 1\n")
    (tmp_path / "sub" / "x.yaml").write_text("base: [../ok.yaml, ok.yaml]\n")  # ok.yaml is not beside x.yaml
    with pytest.raises(ConfigError) as err:
        load_raw(tmp_path / "sub" / "x.yaml")
    message = str(err.value)
    assert f"config key 'base' in '{tmp_path / 'sub' / 'x.yaml'}' names 'ok.yaml', which does not exist" in message
    assert "relative to the file that names them" in message and "\n" not in message


@pytest.mark.parametrize("base", ["3", "[a.yaml, 3]", "{a: b.yaml}", "['']"])
def test_base_must_be_a_path_or_a_list_of_paths(tmp_path: Path, base: str):
    (tmp_path / "a.yaml").write_text("seed: 1\n")
    (tmp_path / "x.yaml").write_text(f"base: {base}\n")
    with pytest.raises(ConfigError, match="'base' in .*x.yaml' must be a file path or a list of file paths"):
        load_raw(tmp_path / "x.yaml")


def test_shared_blocks_are_not_recipes():
    """configs/_base_/ holds blocks for `base:`: each reads as a mapping, none is picked up as a recipe."""
    blocks = sorted((REPO / "configs" / "_base_").glob("*.yaml"))
    assert blocks
    recipes = {p.name for p in (REPO / "configs").glob("*.yaml")}
    for block in blocks:
        assert isinstance(load_raw(block), dict) and block.name not in recipes


@pytest.mark.parametrize("override, message", [
    ("trainer.max_epoch=3", "unknown config key 'trainer.max_epoch': did you mean 'trainer.max_epochs'?"),
    ("trainr.max_epochs=3", "unknown config key 'trainr': did you mean 'trainer'?"),
    ("data.bach_size=3", "did you mean 'data.batch_size'?"),
    ("optim.lr=fast", "config key 'optim.lr' expects float, got 'fast' (str)"),
    ("optim.name=rmsprop", "config key 'optim.name' must be one of 'sgd' | 'adam' | 'adamw' | 'lars', got 'rmsprop'"),
    ("data.classes=left", "config key 'data.classes' expects list of str"),
    ("recipe=drivng", "unknown recipe 'drivng' in config key 'recipe': did you mean 'driving'?"),
    ("sched.name=multistep", "'sched.milestones' must list at least one milestone"),
    ("data.source=csv", "config key 'data.root' is required for source 'csv'"),
    ("data.source=csv", "set data.root=/path/to/data"),
])
def test_validation_errors_name_key_and_fix(override: str, message: str):
    with pytest.raises(ConfigError) as err:
        resolve_config(DEMO, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_data_root_names_the_path(tmp_path: Path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=f"data root '{missing}' .* does not exist"):
        resolve_config(DEMO, ["data.source=csv", f"data.root={missing}"])


def test_bad_yaml_names_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: driving\ntrainer:\n  max_epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml' is not valid YAML at line \d+"):
        resolve_config(bad, [])


def test_override_into_a_value_is_an_error():
    with pytest.raises(ConfigError, match="'seed' is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def _existing_paths_for(path: Path, tmp_path: Path) -> list[str]:
    """Real-format configs point at data the test machine lacks: overrides giving them existing paths."""
    from torchrepro.core.config import load_raw

    raw = load_raw(path)
    data = raw.get("data", {})
    if raw["recipe"] == "driving":
        return [f"data.root={tmp_path}"] if data.get("source") != "synthetic" else []
    if raw["recipe"] == "vpr_event":
        keys = ("train_events", "train_poses", "val_events", "val_poses", "test_events", "test_poses",
                "database_events", "database_poses")
        for key in keys:  # one existing path per recording: validation and test must be different ones
            (tmp_path / key).mkdir(exist_ok=True)
        return [f"data.{k}={tmp_path / k}" for k in keys if data.get(k)]
    if raw["recipe"] == "reid":
        names = set(data.get("sources", [])) | set(data.get("targets", []))
        return [f"data.roots.{n}={tmp_path}" for n in sorted(names - {"synthetic"})]
    if raw["recipe"] in ("simclr", "detection"):
        return [f"data.root={tmp_path}"] if data.get("source") != "synthetic" else []
    if raw["recipe"] == "magicpoint":
        return []
    if raw["recipe"] == "superpoint":  # the labeler is a MagicPoint run's checkpoint: a classical one stands in
        folders = [f"data.{k}={tmp_path}" for k in ("images", "val_hpatches", "test_hpatches")]
        return ["data.labeler=shi", *(folders if "images" in load_raw(path).get("data", {}) else [])]
    if raw["recipe"] == "nerf":  # a tiny-NeRF .npz file or a Blender scene folder
        source = data.get("source")
        if source == "tiny_nerf":
            (tmp_path / "tiny_nerf_data.npz").touch()
            return [f"data.path={tmp_path / 'tiny_nerf_data.npz'}"]
        return [f"data.path={tmp_path}"] if source == "blender" else []
    if raw["recipe"] in ("ffn", "lipnet"):  # SSv2 or a frames-folder + CSV data set; a GRID download
        return [f"data.root={tmp_path}"] if data.get("source") != "synthetic" else []
    raise AssertionError(f"{path}: no placeholder rule for recipe {raw['recipe']}")


def test_all_shipped_configs_parse(tmp_path: Path):
    paths = sorted((REPO / "configs").glob("*.yaml"))
    assert len(paths) >= 11
    for path in paths:
        cfg = resolve_config(path, _existing_paths_for(path, tmp_path))
        assert cfg.recipe
