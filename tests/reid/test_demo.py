"""The re-ID recipe's live page of ``torchrepro serve``: its functions against a tiny trained run, and the page under
Streamlit's headless AppTest (a test query, an uploaded person picture)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.helpers import assert_no_exception, page_app
from torchrepro.core.demo import load_model
from torchrepro.reid.demo import image_feature, rank_gallery, set_features, target_sets
from torchrepro.reid.task import feature_distances


@pytest.fixture(scope="module")
def loaded(tiny_runs):
    return load_model(tiny_runs("reid"), "best.ckpt", "reid")


def test_ranked_gallery_follows_the_protocol(loaded):
    target = target_sets(loaded)[0]
    features = set_features(loaded, 0)
    nq = len(target.query)
    gallery = features[nq:]
    assert features.shape[0] == nq + len(target.gallery)
    distance = loaded.cfg.model.distance
    for i in range(nq):
        q = target.query[i]
        matches = rank_gallery(features[i], gallery, target, distance, query_index=i)
        assert [m.rank for m in matches] == list(range(1, len(matches) + 1)) and len(matches) == 10
        dist = feature_distances(features[i][None], gallery, distance)[0]
        assert [m.distance for m in matches] == sorted(m.distance for m in matches)
        assert np.allclose([m.distance for m in matches], dist[[m.index for m in matches]])
        for m in matches:
            g = target.gallery[m.index]
            assert (m.pid, m.camid) == (g.pid, g.camid)
            assert not (g.pid == q.pid and g.camid == q.camid), "the protocol removes same person, same camera"
            assert m.correct == (g.pid == q.pid and g.camid != q.camid)
        # nothing left out was nearer than the 10th, except the removed same-person same-camera images
        kept = [j for j in np.argsort(dist, kind="stable")
                if not (target.gallery[j].pid == q.pid and target.gallery[j].camid == q.camid)][:10]
        assert [m.index for m in matches] == kept

    # a picture from elsewhere: no identity, nothing removed, nothing marked
    picture = Image.open(target.query[0].path).convert("RGB")
    feature = image_feature(loaded, picture)
    assert np.allclose(feature.numpy(), features[0].numpy(), atol=1e-4)  # the same transform as the evaluation
    free = rank_gallery(feature, gallery, target, distance)
    assert all(m.correct is None for m in free)
    assert [m.index for m in free] == list(np.argsort(feature_distances(feature[None], gallery, distance)[0],
                                                     kind="stable")[:10])


def test_page_ranks_the_gallery_for_a_query_and_an_upload(tiny_runs):
    at = page_app(tiny_runs("reid").parent, "reid").run()
    assert_no_exception(at)
    assert not at.error
    verdict = (at.success or at.warning)[0].value
    assert verdict.startswith("Rank-1 is") and "of the top 10" in verdict
    captions = [c for c in at.main if type(c).__name__ == "Image"]
    assert captions  # the query and its ten gallery images

    at.selectbox(key="reid:query").select(1).run()
    assert_no_exception(at)
    assert not at.error

    at.radio(key="reid:source").set_value("upload a person picture").run()
    person = io.BytesIO()
    Image.new("RGB", (32, 64), (200, 40, 40)).save(person, format="JPEG")
    at.file_uploader(key="reid:upload").set_value(("person.jpg", person.getvalue(), "image/jpeg"))
    at.run()
    assert_no_exception(at)
    assert not at.error and "no identity" in at.info[0].value
