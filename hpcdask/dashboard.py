"""The hpcdask page of the scheduler's Bokeh dashboard (``/hpc``).

:class:`HPCDashboard` is a scheduler plugin the cluster hands its scheduler. When
the scheduler starts it adds the page to the dashboard's own web server (and its
menu) and begins sampling the cluster once a second into a history
(:mod:`hpcdask.page`). The page shows, live: jobs by state over time, workers
over time against the planned (adaptive) target, core-hours charged over time,
and the job table.

Everything runs on the scheduler's event loop, which for hpcdask's clusters is the
cluster's own: samples and page updates render the cluster's
:class:`~hpcdask.view.ClusterView` and never wait on the queue. The plugin holds
the cluster's view method weakly, so a dashboard left open keeps no closed
cluster alive.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import SchedulerPlugin
from tornado.ioloop import IOLoop, PeriodicCallback

from hpcdask.page import History, HPCPage, JobsPane, sample_of
from hpcdask.view import HPC_JOBS_PANE, HPC_PAGE, ClusterView

if TYPE_CHECKING:
    from bokeh.document import Document
    from distributed.scheduler import Scheduler

logger = logging.getLogger(__name__)

__all__ = ["HPCDashboard"]


class HPCDashboard(SchedulerPlugin):
    """Scheduler plugin that serves the ``/hpc`` page for one cluster.

    Parameters
    ----------
    view
        the view of the cluster to show: a bound method (the cluster's
        ``view``), held weakly.
    http_prefix
        the scheduler's ``http_prefix`` (the dashboard's URL prefix).
    interval
        seconds between samples and page updates.
    """

    name = "hpcdask-dashboard"

    def __init__(
        self,
        view: Callable[[], ClusterView],
        http_prefix: str | None = "/",
        interval: float = 1.0,
    ) -> None:
        self._view = weakref.WeakMethod(view)
        self.http_prefix = http_prefix or "/"
        self.interval = interval
        self.history = History()
        self._sampler: PeriodicCallback | None = None
        self.page_registered = False
        with contextlib.suppress(ImportError):  # no bokeh: no dashboard at all
            register_jobs_pane()

    async def start(self, scheduler: Scheduler) -> None:
        with contextlib.suppress(ImportError):  # no bokeh: no dashboard at all
            self.page_registered = self._register_page(scheduler)
        self.sample()
        self._sampler = PeriodicCallback(self.sample, self.interval * 1000)
        self._sampler.start()

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None

    def view(self) -> ClusterView | None:
        """The cluster's view now; ``None`` once the cluster is gone."""
        method = self._view()
        return None if method is None else method()

    def sample(self) -> None:
        """Add the cluster's current state to the history."""
        try:
            view = self.view()
        except Exception:  # a half-built or closing cluster
            logger.debug("no sample of the cluster", exc_info=True)
            return
        if view is not None:
            self.history.append(sample_of(view))

    def _register_page(self, scheduler: Scheduler) -> bool:
        from distributed.dashboard.core import BokehApplication
        from distributed.dashboard.scheduler import template_variables

        application = getattr(scheduler, "http_application", None)
        if application is None or not getattr(application, "applications", None):
            return False  # the dashboard is off: nothing to add a page to
        variables = template_variables(scheduler)
        # the menu's list is shared with the dashboard's own pages: "hpc" shows
        # in the menu of every page of this scheduler
        if HPC_PAGE not in variables["pages"]:
            variables["pages"].append(HPC_PAGE)
        bokeh_app = BokehApplication(  # type: ignore[no-untyped-call]
            {f"/{HPC_PAGE}": self.make_document},
            scheduler,
            prefix=self.http_prefix,
            template_variables=variables,
        )
        application.add_application(bokeh_app)
        bokeh_app.initialize(IOLoop.current())
        bokeh_app.start()
        return True

    def make_document(
        self, scheduler: Scheduler, extra: dict[str, Any], doc: Document
    ) -> None:
        """Build one browser session's page (Bokeh calls this per session)."""
        from distributed.dashboard.components.scheduler import BOKEH_THEME, env

        page = HPCPage(self.history, self.view)
        doc.title = "Dask: HPC jobs"
        doc.add_root(page.root)
        doc.template = env.get_template("simple.html")
        doc.template_variables.update(extra)
        doc.theme = BOKEH_THEME
        doc.add_periodic_callback(page.update, round(self.interval * 1000))

    def make_jobs_document(
        self, scheduler: Scheduler, extra: dict[str, Any], doc: Document
    ) -> None:
        """One session of the jobs pane (``individual-hpc-jobs``)."""
        from distributed.dashboard.components.scheduler import BOKEH_THEME

        pane = JobsPane(self.view)
        doc.title = "Dask: HPC jobs"
        doc.add_root(pane.root)
        doc.theme = BOKEH_THEME
        doc.add_periodic_callback(pane.update, round(self.interval * 1000))


def register_jobs_pane() -> None:
    """Add the jobs pane to the pages of the dashboards schedulers make from
    now on, beside Dask's own ``individual-*`` pages: JupyterLab's Dask sidebar
    offers the pages its ``individual-plots.json`` lists, which are those of the
    dashboard's own Bokeh application (a page added later is not listed)."""
    from distributed.dashboard import scheduler as dashboard_pages

    dashboard_pages.applications.setdefault(f"/{HPC_JOBS_PANE}", _jobs_pane)


def _jobs_pane(scheduler: Scheduler, extra: dict[str, Any], doc: Document) -> None:
    plugin = scheduler.plugins.get(HPCDashboard.name)
    if isinstance(plugin, HPCDashboard):
        plugin.make_jobs_document(scheduler, extra, doc)
    else:  # a scheduler of no hpcdask cluster in this process
        from bokeh.models import Div

        doc.add_root(Div(text="<b>No hpcdask cluster on this scheduler.</b>"))
