"""Forest and funnel plots of alliance.meta results: the artists exist and carry the numbers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from alliance import meta
from alliance.plots import forest, funnel


@pytest.fixture(scope="module")
def res():
    return meta.meta_analysis(meta.example_studies().head(20))


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def _by_gid(items, gid):
    return [a for a in items if a.get_gid() == gid]


def test_forest_has_diamond_and_prediction_interval(res, ax):
    out = forest(res, ax=ax)
    assert out is ax
    (diamond,) = _by_gid(ax.patches, "pooled-diamond")
    xy = diamond.get_xy()
    # the diamond spans the CI (on the r scale) and peaks at the pooled r
    assert xy[:, 0].min() == pytest.approx(res.r_ci_low)
    assert xy[:, 0].max() == pytest.approx(res.r_ci_high)
    assert xy[np.argmax(xy[:, 1]), 0] == pytest.approx(res.r)
    (pi,) = _by_gid(ax.collections, "prediction-interval")
    seg = pi.get_segments()[0]
    assert sorted(seg[:, 0]) == pytest.approx([res.r_pi_low, res.r_pi_high])
    (cis,) = _by_gid(ax.collections, "study-ci")
    assert len(cis.get_segments()) == res.k
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == res.labels[0] and labels[-1].startswith("RE model")


def test_forest_z_scale_order_and_fixed_effect(ax):
    fe = meta.meta_analysis(meta.example_studies().head(10), method="FE")
    forest(fe, ax=ax, scale="z", order="estimate")
    (diamond,) = _by_gid(ax.patches, "pooled-diamond")
    assert diamond.get_xy()[:, 0].max() == pytest.approx(fe.ci_high)
    assert not _by_gid(ax.collections, "prediction-interval")  # no PI for a FE model
    (points,) = _by_gid(ax.collections, "study-point")
    xs = points.get_offsets()[:, 0]
    ys = points.get_offsets()[:, 1]
    assert np.all(np.diff(xs[np.argsort(-ys)]) >= 0)  # sorted by estimate, top to bottom


def test_forest_rejects_moderator_models(ax):
    mr = meta.meta_regression(meta.example_studies(), mods="~ rater")
    with pytest.raises(ValueError, match="moderators"):
        forest(mr, ax=ax)
    with pytest.raises(TypeError):
        forest(meta.example_studies(), ax=ax)


def test_funnel_plain_and_contours(res, ax):
    funnel(res, ax=ax)
    (pts,) = _by_gid(ax.collections, "funnel-points")
    assert len(pts.get_offsets()) == res.k
    assert _by_gid(ax.lines, "funnel-lines")
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # standard error axis inverted
    fig2, ax2 = plt.subplots()
    try:
        funnel(res, ax=ax2, contours=(0.10, 0.05, 0.01))
        assert len(_by_gid(ax2.collections, "funnel-contour")) == 3
        with pytest.raises(ValueError, match="between 0 and 1"):
            funnel(res, ax=ax2, contours=(5,))
    finally:
        plt.close(fig2)


def test_funnel_shows_filled_studies(ax):
    tf = meta.trim_and_fill(meta.meta_analysis(meta.example_studies()))
    funnel(tf, ax=ax)
    filled = _by_gid(ax.collections, "funnel-filled")
    assert tf.k0 > 0 and len(filled[0].get_offsets()) == tf.k0
    (pts,) = _by_gid(ax.collections, "funnel-points")
    assert len(pts.get_offsets()) == 60
