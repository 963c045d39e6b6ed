"""Ray, the engine behind ``benchmark.engine: ray`` and ``embed.engine: ray``: connect, run, fail clearly.

Why Ray and not a home-made pool: the same program then runs on this machine's cores or on a
cluster of many (``ray.address``), with task retries, an object store that ships each input once,
and Ray Data actor pools for the embedding batches. Everything here is imported lazily: with the
default ``engine: local`` Ray is never imported, let alone started.

* :func:`session` starts a local Ray (``ray.address: null``, ``num_cpus`` CPUs, the dashboard only
  when asked for and bound to ``dashboard_host``) or joins a cluster (``auto``, ``ray://host:10001``
  or ``host:6379``; the environment variable ``RAY_ADDRESS`` wins over params), and shuts down what
  it started. Ray missing or no cluster reachable is one :class:`scrm.errors.ScrmError` naming the
  setting to change.
* :func:`submit` runs a pure function as Ray tasks (``max_retries`` retries, also on an exception)
  and :func:`outcome` turns a task that still failed into the same error text the local engine
  records (:func:`error_text`), so both engines write the same results.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config_ray import RaySettings
from .errors import ScrmError

log = logging.getLogger(__name__)
ENV_ADDRESS = "RAY_ADDRESS"


def resolve_address(settings: RaySettings, env: dict[str, str] | None = None) -> str | None:
    """``RAY_ADDRESS`` when set (Ray's own convention), else ``ray.address``."""
    value = (os.environ if env is None else env).get(ENV_ADDRESS, "").strip()
    return value or settings.address


def _where(address: str | None, env: dict[str, str] | None = None) -> str:
    source = ENV_ADDRESS if (os.environ if env is None else env).get(ENV_ADDRESS, "").strip() \
        else "params.yaml ray.address"
    return f"{address!r} (from {source})"


def error_text(exc: BaseException) -> str:
    """What a failed cell records: the original exception's type and first line (a Ray task error
    is unwrapped to the exception the task raised, so both engines write the same text)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    first = (str(exc).strip().splitlines() or [""])[0][:500]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _import_ray(what: str) -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ScrmError(f"{what} = ray, but Ray is not installed in this environment: install the "
                        "pinned stack (`make venv`, or pip install -r requirements.lock.txt), or "
                        f"set {what}: local in params.yaml.") from exc
    return ray


def _reachable(address: str, timeout_s: float = 5.0) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (``ray://`` prefix allowed): a
    quick check so a wrong address fails in seconds, not after Ray's own minute of retries."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _unreachable(address: str | None, what: str, detail: str) -> ScrmError:
    return ScrmError(f"{what} = ray, but no Ray cluster is reachable at {_where(address)}: "
                     f"{detail}. Start one (`ray start --head` on the head node), fix ray.address "
                     f"in params.yaml (or the {ENV_ADDRESS} environment variable), set ray.address: "
                     f"null to start a local Ray on this machine, or set {what}: local.")


@contextmanager
def session(settings: RaySettings, what: str) -> Iterator[Any]:
    """The ``ray`` module, connected: a Ray already started in this process is used as it is;
    otherwise a local Ray is started (address null) or the cluster at the address joined, and shut
    down on leaving. ``what`` is the setting that chose Ray (``benchmark.engine``), named in errors."""
    ray = _import_ray(what)
    if ray.is_initialized():
        yield ray
        return
    address = resolve_address(settings)
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False,
                              "configure_logging": False}
    if address is None:
        kwargs.update(num_cpus=settings.num_cpus, include_dashboard=settings.include_dashboard,
                      dashboard_host=settings.dashboard_host)
    else:
        if address != "auto" and not _reachable(address):
            raise _unreachable(address, what, "nothing accepts connections there")
        # the workers run this very code: ship the scrm package (the rest of the stack must be
        # installed on every node: `make venv` there)
        kwargs["runtime_env"] = {"py_modules": [str(Path(__file__).resolve().parent)]}
    try:  # "local": always a new Ray on this machine, never one a `ray start` left running
        ray.init(address=address or "local", **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise _unreachable(address, what, error_text(exc)) from exc
    log.info("ray: %s", ray.cluster_resources())
    try:
        yield ray
    finally:
        ray.shutdown()


def submit(ray: Any, fn: Callable[..., Any], args: Sequence[Sequence[Any]], *,
           max_retries: int, num_cpus: float = 1) -> list[Any]:
    """One Ray task per argument tuple (``fn(*a)``), retried up to ``max_retries`` times on a
    crash or an exception; the object references, in the order of ``args``."""
    remote = ray.remote(fn).options(max_retries=max_retries, retry_exceptions=True,
                                    num_cpus=num_cpus)
    return [remote.remote(*a) for a in args]


def outcome(ray: Any, ref: Any) -> tuple[Any, str | None]:
    """(the task's value, None) or (None, the error text of a task that failed every retry)."""
    try:
        return ray.get(ref), None
    except Exception as exc:  # noqa: BLE001 - a failed cell is a result, not the end of the run
        return None, error_text(exc)


def gpus(ray: Any) -> int:
    """GPUs of the connected cluster (0 on this machine)."""
    return int(ray.cluster_resources().get("GPU", 0))


def cpus(ray: Any) -> int:
    """CPUs of the connected cluster."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
