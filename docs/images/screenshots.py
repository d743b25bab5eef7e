"""Write the README's pictures of the web demo from a real run, in Debian's Chromium (``make browser``):

* ``docs/images/report.png``: the top of the run's report.html (written to a temporary file first when the run has
  none);
* ``docs/images/demo_driving.png``: ``torchrepro serve``'s driving page scoring one of the run's validation frames.

Usage, from the repository root: ``.venv/bin/python docs/images/screenshots.py [RUN_DIR]`` (default: the newest
driving run under ``runs/driving`` that has a checkpoint). Uses the browser test's helpers (``tests/helpers.py``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.helpers import chromium, drawn, serving  # noqa: E402
from torchrepro.core.report import REPORT_NAME, write_report  # noqa: E402

OUT = REPO / "docs" / "images"
VIEWPORT = {"width": 1400, "height": 1100}


def newest_driving_run() -> Path:
    runs = sorted(p.parent.parent for p in (REPO / "runs" / "driving").glob("*/checkpoints/*.ckpt"))
    if not runs:
        sys.exit("no driving run with a checkpoint under runs/driving: train one with `make demo`")
    return runs[-1]


def main(argv: list[str]) -> None:
    run_dir = Path(argv[0]).resolve() if argv else newest_driving_run()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        report = run_dir / REPORT_NAME
        if not report.is_file():
            report = write_report(run_dir, tmp_dir / REPORT_NAME)
        runs = tmp_dir / "runs" / "driving"
        runs.mkdir(parents=True)
        (runs / run_dir.name).symlink_to(run_dir)
        with chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(report.as_uri())
            drawn(page)
            page.screenshot(path=OUT / "report.png", full_page=True, clip={"x": 0, "y": 0, "width": 1400,
                                                                           "height": 1500})
            with serving(runs.parent, tmp_dir / "serve.log", cwd=REPO) as url:  # the run's data paths are relative
                page.goto(f"{url}/driving")
                page.get_by_text("Predicted direction:").wait_for(timeout=180_000)
                drawn(page)
                page.screenshot(path=OUT / "demo_driving.png")
    print(f"wrote {OUT / 'report.png'} and {OUT / 'demo_driving.png'} from {run_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
