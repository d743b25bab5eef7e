"""The web demo in a real browser: ``torchrepro serve`` in a subprocess, Debian's Chromium driven by Playwright.

Opens the runs page, then the driving page, uploads a PNG frame through the page's file input and waits for the
predicted direction and its probabilities; opens a run's report.html and checks that every picture decodes and
every metric of the run's metrics.json is on the page. Screenshots go to ``test-artefacts/``.

Without ``/usr/bin/chromium`` (``make browser`` installs it) the test is skipped, unless
``TORCHREPRO_REQUIRE_BROWSER=1`` (CI), where it fails. Select it with ``-m browser``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import pytest
import yaml
from PIL import Image

from tests.helpers import CHROMIUM, REPO, chromium, drawn, serving
from torchrepro.core.report import BOOKKEEPING, format_value, is_baseline

ARTEFACTS = REPO / "test-artefacts"
WAIT_MS = 90_000


def require_browser() -> None:
    missing = [what for what, ok in ((str(CHROMIUM), CHROMIUM.is_file()),
                                     ("the playwright package", importlib.util.find_spec("playwright") is not None))
               if not ok]
    if not missing:
        return
    message = f"{' and '.join(missing)} missing: install Chromium with `make browser` (and `pip install -e '.[dev]'`)"
    if os.environ.get("TORCHREPRO_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (TORCHREPRO_REQUIRE_BROWSER=1)")
    pytest.skip(message)


def a_frame(run_dir: Path) -> bytes:
    """A validation frame of the run's own data, as PNG bytes."""
    data = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    path = next(Path(data["synthetic_dir"]).glob("*/val/images/*"))
    out = io.BytesIO()
    Image.open(path).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def check_report(page, run_dir: Path) -> None:
    """Every <img> of the report decoded; every metric of metrics.json shown (by name, or as its baseline row), with
    the value of its last entry in each stage."""
    page.goto((run_dir / "report.html").as_uri())
    images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    assert len(images) >= 2 and all(done and width > 0 for _, done, width in images), images
    text = page.inner_text("body")
    last: dict[str, dict] = {}
    for entry in json.loads((run_dir / "metrics.json").read_text())["history"]:
        last[entry["stage"]] = entry
    for entry in last.values():
        for name, value in entry.items():
            if name in BOOKKEEPING:
                continue
            shown = f"baseline: {name.rsplit('/', 1)[-1][len('baseline_'):].split('_')[0]}" if is_baseline(name) \
                else name
            assert shown in text, f"{name} is not in the report"
            assert format_value(value) in text, f"{name} = {format_value(value)} is not in the report"


@pytest.mark.browser
def test_demo_and_report_in_chromium(tiny_runs, tmp_path: Path) -> None:
    require_browser()
    run_dir = tiny_runs("driving")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "driving").symlink_to(run_dir)
    ARTEFACTS.mkdir(exist_ok=True)
    with serving(runs, tmp_path / "serve.log") as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_text("1 run directory under").wait_for(timeout=WAIT_MS)
        page.locator("[data-testid=stDataFrame]").first.wait_for(timeout=WAIT_MS)
        report = page.frame_locator("iframe").first  # the run's report.html, embedded
        report.get_by_text("Results: held-out test (scored once)").wait_for(timeout=WAIT_MS)
        page.screenshot(path=ARTEFACTS / "serve_runs.png")

        page.goto(f"{url}/driving")
        page.get_by_text("Predicted direction").first.wait_for(timeout=WAIT_MS)  # an example frame, first
        page.get_by_text("upload a frame").click()
        page.get_by_text("Upload a frame to see the predicted direction").wait_for(timeout=WAIT_MS)
        page.locator("input[type=file]").set_input_files(
            files=[{"name": "frame.png", "mimeType": "image/png", "buffer": a_frame(run_dir)}])
        verdict = page.get_by_text("Predicted direction:")
        verdict.wait_for(timeout=WAIT_MS)
        assert page.get_by_text("frame.png").count() >= 1
        predicted = verdict.inner_text().split(":", 1)[1].split("(")[0].strip()
        assert predicted in ("left", "right", "straight")
        page.locator("[data-testid=stDataFrame]").first.wait_for(timeout=WAIT_MS)  # the probabilities
        drawn(page)
        page.screenshot(path=ARTEFACTS / "serve_driving_upload.png")
        assert not page.locator("[data-testid=stException]").count()

        check_report(page, run_dir)
        page.screenshot(path=ARTEFACTS / "report.png")
