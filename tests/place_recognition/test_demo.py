"""The event-VPR recipe's live page of ``torchrepro serve``: its functions against a tiny trained run, and the page
under Streamlit's headless AppTest (a query of the validation and of the test traversal)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import assert_no_exception, page_app
from torchrepro.core.demo import load_model
from torchrepro.place_recognition.demo import descriptors, nearest_place, prepared, top_places


@pytest.fixture(scope="module")
def loaded(tiny_runs):
    return load_model(tiny_runs("vpr_event"), "best.ckpt", "vpr_event")


def test_top_places_are_the_nearest_descriptors_with_true_places_from_positions(loaded):
    split = prepared(loaded).splits["test"]
    q, db = descriptors(loaded, split.queries), descriptors(loaded, split.database)
    assert q.shape[0] == len(split.queries) and db.shape == (len(split.database), q.shape[1])
    eval_m = loaded.cfg.data.eval_m
    for i in (0, len(q) // 2, len(q) - 1):
        places = top_places(q[i], db, split.query_pos[i], split.db_pos, eval_m)
        assert [p.rank for p in places] == [1, 2, 3, 4, 5]
        # nearest first, and no database window outside the top 5 is nearer than the 5th
        reference = np.linalg.norm(db - q[i], axis=1)
        assert [p.descriptor_distance for p in places] == sorted(p.descriptor_distance for p in places)
        assert np.allclose([p.descriptor_distance for p in places], reference[[p.index for p in places]], atol=1e-4)
        assert np.sort(reference)[4] == pytest.approx(places[-1].descriptor_distance, abs=1e-4)
        for p in places:  # metres and the true-place flag from the recorded positions
            metres = float(np.linalg.norm(split.db_pos[p.index] - split.query_pos[i]))
            assert p.metres == pytest.approx(metres) and p.true_place == (metres <= eval_m)
    index, metres = nearest_place(split.query_pos[0], split.db_pos)
    assert metres == pytest.approx(np.linalg.norm(split.db_pos - split.query_pos[0], axis=1).min())
    assert index == int(np.argmin(np.linalg.norm(split.db_pos - split.query_pos[0], axis=1)))


def test_page_shows_the_top_five_places_of_a_query(tiny_runs):
    at = page_app(tiny_runs("vpr_event").parent, "vpr_event").run()
    assert_no_exception(at)
    assert not at.error
    table = at.dataframe[0].value
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert list(table["descriptor distance"]) == sorted(table["descriptor distance"])
    assert any("True place of this query" in c.value for c in at.caption)

    at.radio(key="vpr_event:split").set_value("test").run()
    at.slider(key="vpr_event:query").set_value(3).run()
    assert_no_exception(at)
    assert not at.error and len(at.dataframe[0].value) == 5
    assert "held-out test" in at.radio(key="vpr_event:split").format_func("test")
