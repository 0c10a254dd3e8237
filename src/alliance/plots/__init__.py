"""Figures. Axes-level functions take ``ax=None`` and return the Axes; none calls ``plt.show``."""

from alliance.plots.change import category_bars, jacobson_truax  # noqa: F401
from alliance.plots.dyad import response_surface  # noqa: F401
from alliance.plots.meta import forest, funnel  # noqa: F401
from alliance.plots.mixed import fitted_trajectories  # noqa: F401
from alliance.plots.models import simple_slopes  # noqa: F401
from alliance.plots.monitoring import monitoring_course  # noqa: F401
from alliance.plots.overview import mean_trajectory, sessions_per_client  # noqa: F401
from alliance.plots.power import power_curve  # noqa: F401
from alliance.plots.ruptures import event_locked, trajectories  # noqa: F401
from alliance.plots.theme import COLUMN_WIDTH, PALETTE, label, set_theme  # noqa: F401
