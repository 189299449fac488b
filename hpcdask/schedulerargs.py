"""The keyword arguments of a cluster's Dask scheduler.

The dashboard listens on 127.0.0.1:8787 with hpcdask's ``/hpc`` page; the
protocol and TLS are the cluster's; ``interface`` keeps dask-jobqueue's meaning
(the scheduler's and the workers'); the user's ``scheduler_options`` come last.
"""

from __future__ import annotations

import logging

from distributed.security import Security

from hpcdask.dashboard import HPCDashboard
from hpcdask.errors import InvalidOptionError
from hpcdask.options import JobOptions
from hpcdask.view import dashboard_host

__all__ = ["scheduler_options"]

logger = logging.getLogger(__name__)


def scheduler_options(
    opts: JobOptions, security: Security | None, dashboard: HPCDashboard
) -> dict[str, object]:
    """The scheduler's keyword arguments: the dashboard on 127.0.0.1:8787 with
    the ``/hpc`` page, the protocol and TLS, then the user's
    ``scheduler_options``.

    The dashboard has no login and shows every worker's logs and call stacks:
    on a shared login node it listens on the loopback address only (reach it
    through jupyter-server-proxy or an ssh tunnel); an address that listens on
    every interface is logged as a warning.
    """
    options: dict[str, object] = {
        "dashboard_address": "127.0.0.1:8787",
        "protocol": opts.protocol,
        "security": security,
    }
    # dask-jobqueue's meaning: interface is the workers' and the scheduler's,
    # unless scheduler_options chooses the scheduler's own address
    if opts.interface and not {"host", "interface"} & set(opts.scheduler_options):
        options["interface"] = opts.interface
    options.update(opts.scheduler_options)
    plugins = opts.scheduler_options.get("plugins") or []
    if not isinstance(plugins, (list, tuple)):
        raise InvalidOptionError(
            "scheduler_options",
            dict(opts.scheduler_options),
            "plugins: expected a list",
        )
    options["plugins"] = [*plugins, dashboard]
    address = str(options["dashboard_address"])
    if options.get("dashboard", True) is not False and dashboard_host(address) is None:
        logger.warning(_PUBLIC_DASHBOARD, address)
    return options


_PUBLIC_DASHBOARD = (
    "the dashboard listens on every interface (dashboard_address=%r): anyone who "
    "can reach this host can read your workers' logs and call stacks there. Keep "
    "the default 127.0.0.1 and use jupyter-server-proxy or an ssh tunnel."
)
