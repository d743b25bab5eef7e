"""The runs page of ``torchrepro serve``: every run under the runs folder with its headline figures, one run's
``report.html`` embedded, and the comparison page of the runs picked (:mod:`torchrepro.core.report_compare`).

The reports are the files ``torchrepro train``/``eval``/``report`` write; a run without one (made before reports
existed) is shown with a report rendered from its files, and the page says how to write it. Needs no torch.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from torchrepro.core.demo import RunEntry, find_runs, summary
from torchrepro.core.demo_ui import reported
from torchrepro.core.errors import DataError
from torchrepro.core.report import render_report
from torchrepro.core.report_compare import render_compare

#: height in pixels of an embedded report (it scrolls inside)
REPORT_HEIGHT = 900


def _report_html(entry: RunEntry) -> str:
    """The run's report.html, or (none written yet) one rendered from its files, with a note saying so."""
    if entry.report.is_file():
        try:
            text = entry.report.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read '{entry.report}' ({type(err).__name__}): write it again with "
                            f"`torchrepro report {entry.path}`") from None
        st.download_button("Download report.html", text, file_name=f"{entry.path.name}-report.html",
                           mime="text/html", key="runs:download")
        return text
    st.info(f"This run has no report.html yet; shown here rendered from its files. Write it with "
            f"`torchrepro report {entry.path}`.")
    return render_report(entry.run, links=False)


def _report_section(entries: list[RunEntry]) -> None:
    st.subheader("Report")
    label = st.selectbox("Run", [e.label for e in entries], key="runs:report")
    entry = next(e for e in entries if e.label == label)
    if entry.run is None:
        st.error(entry.error or f"'{entry.path}' cannot be read", icon=":material/error:")
        return
    with reported():
        st.iframe(_report_html(entry), height=REPORT_HEIGHT)


def _compare_section(entries: list[RunEntry]) -> None:
    st.subheader("Compare runs")
    readable = [e for e in entries if e.run is not None]
    chosen = st.multiselect("Runs to compare", [e.label for e in readable], key="runs:compare")
    if len(chosen) < 2:
        st.caption("Pick two or more runs: their config differences, headline figures and curves side by side.")
        return
    runs = [e.run for e in readable if e.label in chosen]
    st.iframe(render_compare(runs), height=REPORT_HEIGHT)


def page(runs_dir: Path) -> None:
    """The runs table, a run's report and the comparison of the runs picked."""
    st.title("Runs")
    if not runs_dir.is_dir():
        st.error(f"The runs folder '{runs_dir}' does not exist: start `torchrepro serve RUNS_DIR` with the folder "
                 f"your runs are in.", icon=":material/error:")
        return
    entries = find_runs(runs_dir)
    if not entries:
        st.info(f"No run under '{runs_dir}' yet: train one with `torchrepro train configs/driving_synthetic.yaml "
                f"run.root={runs_dir}`, then reload this page.")
        return
    st.caption(f"{len(entries)} run director{'y' if len(entries) == 1 else 'ies'} under `{runs_dir}`. Validation: "
               f"the best value of the metric "
               f"that chose best.ckpt; held-out test: scored once, with that checkpoint, when training ended.")
    st.dataframe([summary(e) for e in entries], hide_index=True)
    _report_section(entries)
    _compare_section(entries)
