"""Shared fixtures. Figures use the non-interactive Agg backend."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def demo():
    """A fresh copy of the bundled demo study."""
    import alliance

    return alliance.datasets.load_dataset("demo")
