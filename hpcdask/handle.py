"""A notebook's handle on a cluster whose scheduler runs in a batch job.

``SLURMCluster(..., scheduler_in="job")`` and ``SLURMCluster.from_name(name)``
return a :class:`ClusterHandle`: the cluster itself (scheduler, job manager,
adaptive loop, cost meter, dashboard) lives in its scheduler job
(:mod:`hpcdask.keeper`); the handle forwards ``scale``, ``adapt``, ``jobs()``,
``usage()``, ``job_script()`` and ``close()`` to it over the scheduler's TLS comm,
with the credentials in the cluster's private registry entry
(:mod:`hpcdask.registry`), and shows its repr, widget and dashboard link.

Dropping a handle (the kernel exits or dies) leaves the cluster running: any
process of the same user reconnects with ``from_name``. ``close()`` ends the
cluster, and returns once its scheduler job has left the queue.

The handle's ``scheduler_address`` is ``hpcdask://NAME``: a Dask ``Client``
given it, in any process of the user, finds the cluster's TLS address and
credentials in the registry (:mod:`hpcdask.address`), so the code JupyterLab's
Dask sidebar inserts, ``Client("hpcdask://NAME")``, connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from distributed.core import Status, rpc
from distributed.deploy.cluster import Cluster
from distributed.utils import NoOpAwaitable
from tornado.ioloop import PeriodicCallback

from hpcdask.address import SCHEME
from hpcdask.config import (
    cluster_settings,
    repr_interval,
    resolve_job_options,
    scheduler_job_config,
)
from hpcdask.cost import Usage
from hpcdask.errors import InvalidOptionError
from hpcdask.forward import DashboardForward
from hpcdask.jobmode import (
    check_cluster_name,
    registry_root,
    resolve_scheduler_job,
)
from hpcdask.launch import Launch, launch, wait_for_job_to_end
from hpcdask.lookup import find_cluster
from hpcdask.poolnames import checked_pools
from hpcdask.pools import pool_options
from hpcdask.registry import Entry, entry_security
from hpcdask.view import ClusterView, dashboard_link_for, hpc_page_link, jobs_frame
from hpcdask.widget import cluster_widget, render_html

if TYPE_CHECKING:
    import pandas

__all__ = ["ClusterHandle", "RemoteAdaptive", "plan_launch"]

_LOCAL_ONLY = ("asynchronous", "loop", "scheduler_in")


class RemoteAdaptive:
    """What ``adapt()`` on a handle returns: the bounds in workers (adaptive
    scaling itself runs in the scheduler job)."""

    def __init__(self, handle: ClusterHandle, minimum: int, maximum: int) -> None:
        self._handle = handle
        self.minimum = minimum
        self.maximum = maximum
        self.answer: asyncio.Future[dict[str, int]] | None = None

    @classmethod
    def pending(
        cls, handle: ClusterHandle, arguments: Mapping[str, Any], bounds: Any
    ) -> RemoteAdaptive:
        """The bounds asked for, until the scheduler job's answer ``bounds``
        (a coroutine) arrives: JupyterLab's sidebar reads them at once."""
        minimum, maximum = arguments.get("minimum"), arguments.get("maximum")
        adaptive = cls(handle, int(minimum or 0), int(maximum or 0))
        adaptive.answer = asyncio.ensure_future(bounds)
        adaptive.answer.add_done_callback(
            lambda f: None if f.exception() else adaptive.update(f.result())
        )
        return adaptive

    def update(self, bounds: Mapping[str, int]) -> None:
        self.minimum, self.maximum = bounds["minimum"], bounds["maximum"]

    def stop(self) -> None:
        """Stop adaptive scaling: the cluster keeps the jobs it has."""
        view = self._handle._view
        self._handle.scale(jobs=0 if view is None else view.running + view.pending)


def plan_launch(system: str, kwargs: Mapping[str, Any], workdir: str) -> Launch:
    """Check a scheduler-job cluster's arguments here, before anything is
    submitted: job options, the scheduler job's options, the name."""
    kwargs = {k: v for k, v in kwargs.items() if k not in _LOCAL_ONLY}
    if kwargs.get("security") not in (None, True):
        raise InvalidOptionError(
            "security",
            kwargs["security"],
            "a scheduler job always uses TLS with credentials made for its "
            "cluster (pass nothing or True)",
        )
    _, configured_job, configured_root = scheduler_job_config()
    job = resolve_scheduler_job(kwargs.pop("scheduler_job", None), configured_job)
    name = kwargs.pop("cluster_name", None) or f"{system}-{secrets.token_hex(3)}"
    not_job = ("security", "n_workers", "pools")
    job_kwargs = {k: v for k, v in kwargs.items() if k not in not_job}
    opts = resolve_job_options(system, **job_kwargs)
    for pool, overrides in checked_pools(kwargs.get("pools")).items():
        pool_options(system, job_kwargs, opts, pool, overrides)  # raises if wrong
    return Launch(
        name=check_cluster_name(name),
        root=registry_root(configured_root),
        opts=opts,
        kwargs=kwargs,
        job=job,
        settings=cluster_settings(),
        workdir=workdir,
    )


class ClusterHandle(Cluster):
    # distributed's Cluster is unannotated: calls of its methods carry
    # ``type: ignore[no-untyped-call]``, made once in ``_sync``
    """A handle on a running scheduler-job cluster (see the module's doc).

    Made by ``XCluster(..., scheduler_in="job")``, which submits the scheduler
    job and waits for it, or by :meth:`from_name`, which connects to a running
    one.
    """

    def __init__(
        self,
        name: str,
        *,
        launch_plan: Launch | None = None,
        system: str | None = None,
        asynchronous: bool = False,
        loop: Any = None,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            asynchronous=asynchronous, loop=loop, name=name
        )
        self._plan = launch_plan
        self._system = system
        self.entry: Entry | None = None
        self.security: Any = None
        self._view: ClusterView | None = None
        self._forward: DashboardForward | None = None
        if not self.called_from_running_loop:
            self._loop_runner.start()  # type: ignore[no-untyped-call]
            self._sync(self._start)

    @classmethod
    def from_name(
        cls, name: str, system: str | None = None, asynchronous: bool = False
    ) -> ClusterHandle:
        """A handle on the running cluster ``name`` (see ``hpcdask list``); with
        ``system``, only a cluster of that batch system.

        Raises
        ------
        hpcdask.InvalidOptionError
            when no cluster of that name runs.
        """
        return cls(check_cluster_name(name), system=system, asynchronous=asynchronous)

    @classmethod
    def launching(cls, system: str, kwargs: Mapping[str, Any]) -> ClusterHandle:
        """Start a cluster of ``system`` with the constructor's ``kwargs`` in a
        scheduler job, and return a handle on it (awaitable when
        ``asynchronous``)."""
        plan = plan_launch(system, kwargs, os.getcwd())
        return cls(
            plan.name,
            launch_plan=plan,
            asynchronous=bool(kwargs.get("asynchronous")),
            loop=kwargs.get("loop"),
        )

    def __await__(self) -> Any:
        async def start() -> ClusterHandle:
            if self.status == Status.created:
                await self._start()
            return self

        return start().__await__()

    # -- connecting ---------------------------------------------------------------

    async def _start(self) -> None:
        if self.status != Status.created:
            return
        _, _, configured_root = scheduler_job_config()
        if self._plan is not None:
            self.entry = await launch(self._plan)
        else:
            self.entry = await find_cluster(registry_root(configured_root), self.name)
        if self._system and self.entry.system != self._system:
            raise InvalidOptionError(
                "name", self.name, f"the cluster is a {self.entry.system} cluster"
            )
        self.security = entry_security(self.entry.directory)
        self.scheduler_comm = rpc(  # type: ignore[no-untyped-call]
            self.scheduler_address,
            connection_args=self.security.get_connection_args("client"),
        )
        name = self.name
        await super()._start()  # type: ignore[no-untyped-call]
        self.name = name  # not the scheduler's metadata, which may lag behind
        self._view = await self._fetch_view()
        if self.entry.dashboard:
            host, _, port = self.entry.dashboard.rpartition(":")
            self._forward = DashboardForward(host, int(port))
            await self._forward.start()
        callback = PeriodicCallback(self._refresh_view, repr_interval() * 1000)
        self.periodic_callbacks["hpcdask-view"] = callback
        callback.start()

    async def _sync_cluster_info(self) -> None:
        """The scheduler job owns the scheduler's cluster metadata."""

    @property
    def scheduler_address(self) -> str:
        return f"{SCHEME}://{self.name}"

    def _sync(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` on the handle's loop: awaitable when asynchronous."""
        return self.sync(func, *args, **kwargs)  # type: ignore[no-untyped-call]

    # -- forwarded ------------------------------------------------------------------

    async def _call(self, op: str, **kwargs: Any) -> Any:
        assert self.scheduler_comm is not None, "the handle has not connected"
        return await getattr(self.scheduler_comm, op)(**kwargs)

    async def _unpickled(self, op: str, **kwargs: Any) -> Any:
        return pickle.loads(await self._call(op, **kwargs))

    async def _fetch_view(self) -> ClusterView:
        view: ClusterView = await self._unpickled("hpcdask_view")
        self._view = view
        return view

    async def _refresh_view(self) -> None:
        with contextlib.suppress(Exception):  # the cluster is ending: keep the last
            await self._fetch_view()

    def view(self) -> ClusterView | None:
        """The cluster's last view (refreshed every repr interval)."""
        return self._view

    def scale(
        self,
        n: int | None = None,
        memory: str | int | None = None,
        cores: int | None = None,
        *,
        jobs: int = 0,
        pool: str | None = None,
    ) -> Any:
        """As ``HPCCluster.scale``, done by the scheduler job."""
        amount = {"n": n, "memory": memory, "cores": cores, "jobs": jobs}
        return self._sync(self._call, "hpcdask_scale", **amount, pool=pool)

    def add_pool(self, name: str, **options: Any) -> Any:
        """As ``HPCCluster.add_pool``, done by the scheduler job."""
        return self._sync(self._call, "hpcdask_add_pool", name=name, options=options)

    def adapt(self, **arguments: Any) -> RemoteAdaptive:  # type: ignore[override]
        """As ``HPCCluster.adapt`` (the same arguments), run by the scheduler
        job; returns the bounds in workers."""
        bounds = self._sync(self._call, "hpcdask_adapt", arguments=arguments)
        if self.asynchronous:  # JupyterLab's sidebar, in its event loop
            return RemoteAdaptive.pending(self, arguments, bounds)
        return RemoteAdaptive(self, bounds["minimum"], bounds["maximum"])

    def jobs(self) -> pandas.DataFrame:
        """The cluster's jobs as the scheduler job knows them now."""
        view: ClusterView = self._sync(self._fetch_view)
        return jobs_frame(view.jobs, pools=bool(view.pools))

    def usage(self, pool: str | None = None) -> Usage:
        """What the cluster's jobs (of ``pool``) have been charged so far (see
        ``HPCCluster.usage``)."""
        usage: Usage = self._sync(self._unpickled, "hpcdask_usage", pool=pool)
        return usage

    def job_script(self, pool: str | None = None) -> str:
        """The script the scheduler job submits its next worker job (of
        ``pool``) with."""
        script: str = self._sync(self._call, "hpcdask_job_script", pool=pool)
        return script

    # -- ending ---------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> Any:
        """End the cluster: its scheduler job cancels every worker job and ends;
        returns once it has left the queue. To leave the cluster running, drop
        the handle or call :meth:`disconnect`."""
        if self.status == Status.closed:
            return NoOpAwaitable() if self.asynchronous else None
        result = self._sync(self._shutdown, callback_timeout=timeout)
        if not self.asynchronous:
            self._loop_runner.stop()  # type: ignore[no-untyped-call]
        return result

    def disconnect(self) -> Any:
        """Close this handle only: the cluster keeps running."""
        result = super().close()
        if not self.asynchronous:
            self._loop_runner.stop()  # type: ignore[no-untyped-call]
        return result

    async def _shutdown(self) -> None:
        with contextlib.suppress(OSError):  # already ending
            await self._call("hpcdask_close")
        await self._close()
        if self.entry is not None:
            await wait_for_job_to_end(self.entry, cluster_settings())

    def __del__(self, _warn: Any = None) -> None:
        """Dropping a handle leaves the cluster running (no warning)."""

    # -- shown ----------------------------------------------------------------------

    async def _close(self) -> None:
        if self._forward is not None:
            await self._forward.stop()
        await super()._close()  # type: ignore[no-untyped-call]

    @property
    def dashboard_link(self) -> str:
        """The dashboard through a port of this machine's 127.0.0.1 that
        forwards to the scheduler job's (see :mod:`hpcdask.forward`)."""
        if self._forward is None or not self._forward.port:
            return ""
        return dashboard_link_for("127.0.0.1", self._forward.port)

    @property
    def hpc_dashboard_link(self) -> str:
        return hpc_page_link(self.dashboard_link)

    def _repr_html_(self, cluster_status: object = None) -> str:
        if self._view is None:
            return f"<p>{type(self).__name__} {self.name}: not connected</p>"
        return render_html(self._view)

    def _widget(self) -> object:
        try:
            return self._cached_widget
        except AttributeError:
            self._cached_widget = cluster_widget(
                self._shown_view, self.loop, self.periodic_callbacks, repr_interval()
            )
            return self._cached_widget

    def _shown_view(self) -> ClusterView:
        assert self._view is not None
        return self._view

    def __repr__(self) -> str:
        view = self._view
        jobs = "" if view is None else f", {view.describe_jobs()}"
        return f"<ClusterHandle {self.name!r} ({self.scheduler_address}){jobs}>"
