"""Acquire the raw ``twcs.csv`` into ``data/raw/`` atomically, from one of four sources.

* ``sample`` (default): the real 5,000-row sample shipped in ``data/sample/`` (CC BY-NC-SA 4.0).
* ``kaggle``: the real download of ``thoughtvector/customer-support-on-twitter`` with the ``kaggle``
  package. Credentials come from ``~/.kaggle/kaggle.json`` (or ``$KAGGLE_CONFIG_DIR``) or the
  ``KAGGLE_USERNAME``/``KAGGLE_KEY`` environment variables (found and redacted by
  :mod:`scrm.secrets`). ``kaggle`` is imported lazily here only (importing it without credentials
  prints an auth banner), and its failures become a :class:`~scrm.errors.FetchError` that says what
  to do and never contains the key.
* ``file``: a user's own copy (``fetch.path``), validated the same way.
* ``synthetic``: a generated file of the real file's shape (:mod:`scrm.data.synthetic`).

Settings come from :class:`scrm.config.FetchSettings`. ``fetch.path`` is always a real file: DVC lists
it as a dependency of the stage (``${fetch.path}`` in dvc.yaml), so replacing the user's file at the
same path reruns fetch and every stage after it. With other sources it keeps naming the shipped
sample.

Whatever the source, the file is written to a temp name beside the target and renamed into place only
after its header has been checked, so an interrupted fetch never leaves a file a later stage trusts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import io as sio
from .. import status
from ..errors import FetchError
from ..paths import SAMPLE_CSV
from ..secrets import kaggle_credentials_present, redact
from .schema import EXPECTED_COLUMNS

if TYPE_CHECKING:
    from ..config import FetchSettings
    from ..paths import Paths

FULL_FILE_BYTES = 516_508_641
SOURCES = ("sample", "kaggle", "file", "synthetic")

_FALLBACK = ("Meanwhile everything runs on the embedded real sample: `scrm fetch --source sample` "
             "(the default).")


class KaggleClient(Protocol):
    """The part of ``kaggle.api.KaggleApi`` we use (a stand-in implements it in tests)."""

    def authenticate(self) -> None: ...

    def dataset_download_files(self, dataset: str, path: str | None = None, force: bool = False,
                               quiet: bool = True, unzip: bool = False) -> Any: ...


def check_header(path: Path) -> list[str]:
    """The CSV must carry every expected column; returns the header."""
    with path.open("rb") as fh:
        first = fh.readline(1 << 20)
    if first[:2] == b"\x1f\x8b":
        raise FetchError(f"{path}: this is a gzip file, not a CSV; decompress it first.")
    if first[:4] == b"PK\x03\x04":
        raise FetchError(f"{path}: this is a zip archive, not a CSV; unzip it and pass twcs.csv.")
    line = first.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if "\r" in line:
        raise FetchError(f"{path}, line 1: lines end in a bare carriage return (classic Mac line "
                         "endings); convert them to \\n first (e.g. `tr '\\r' '\\n'`).")
    try:
        header = next(csv.reader([line]), [])
    except csv.Error as exc:
        raise FetchError(f"{path}, line 1: the header is not valid CSV ({exc}).") from None
    header = [h.strip() for h in header]
    missing = [c for c in EXPECTED_COLUMNS if c not in header]
    if missing:
        raise FetchError(f"{path}, line 1: not a twcs.csv file; header lacks "
                         f"{', '.join(missing)} (expected {','.join(EXPECTED_COLUMNS)}).")
    return header


def count_rows(path: Path) -> int:
    """Number of CSV records (quoted newlines inside text do not count)."""
    import polars as pl

    try:
        return int(pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy")
                   .select(pl.len()).collect().item())
    except Exception:  # noqa: BLE001 - a malformed file still gets a count from the csv module
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            return max(0, sum(1 for _ in csv.reader(fh)) - 1)


def install(src: Path, target: Path, *, copy: Callable[[Path, Path], Any] = shutil.copyfile) -> Path:
    """Copy ``src`` to ``target`` atomically (temp name + rename) after checking its header."""
    check_header(src)
    with sio.atomic_path(target) as tmp:
        copy(src, tmp)
        check_header(tmp)
    return target


# --------------------------------------------------------------------------------------------------
# kaggle
# --------------------------------------------------------------------------------------------------
def default_kaggle_client() -> KaggleClient:
    """Import kaggle lazily, swallowing the banner it prints, and return an authenticated API."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        from kaggle.api.kaggle_api_extended import KaggleApi  # noqa: PLC0415

        api = KaggleApi()
    return api


def _no_credentials(dataset: str) -> FetchError:
    return FetchError(
        "Kaggle credentials not found. Create an API token on kaggle.com (Account -> API -> Create "
        "New Token) and save it as ~/.kaggle/kaggle.json (chmod 600), or set KAGGLE_USERNAME and "
        "KAGGLE_KEY (or KAGGLE_API_TOKEN, or ~/.kaggle/access_token for the newer tokens) in the "
        "environment; you must also accept the dataset's terms on its Kaggle page "
        f"({dataset}). " + _FALLBACK)


_AUTH_WORDS = re.compile(r"\b(401|403|unauthori[sz]ed|forbidden|invalid credentials|"
                         r"authentication (failed|required)|permission denied)\b", re.I)


def _classify(exc: BaseException, dataset: str, during_auth: bool) -> FetchError:
    """Turn whatever the kaggle client raised into one clear, credential-free message.

    By status code or exception type first, then by whole words of the (redacted) message: a
    message that merely echoes an ``Authorization:`` header is not an auth failure.
    """
    msg = redact(f"{type(exc).__name__}: {exc}")[:300]
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, ImportError):
        return FetchError(f"The kaggle package could not be imported ({msg}). Install it with "
                          "`pip install kaggle` (it is in requirements.txt). " + _FALLBACK)
    network = isinstance(exc, (ConnectionError, TimeoutError, OSError)) and status is None
    if status in (401, 403) or (not network and (_AUTH_WORDS.search(msg) or during_auth)):
        return FetchError(
            f"Kaggle refused the credentials or the dataset ({msg}). Check the username/key in "
            "~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY, and that you accepted the "
            f"dataset's terms on kaggle.com/datasets/{dataset}. " + _FALLBACK)
    return FetchError(
        f"Could not download {dataset} from Kaggle ({msg}). Check the network connection "
        "(and any proxy: HTTPS_PROXY) and retry; or download the zip in a browser and run "
        "`scrm fetch --source file --path twcs.csv`. " + _FALLBACK)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Run the kaggle client with its prints and log records dropped: they may echo a credential
    (debug output, request dumps). Our own message, redacted, replaces them."""
    buf = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield
    finally:
        logging.disable(previous)


def extract_twcs(archive: Path, workdir: Path) -> Path:
    """Find and extract ``twcs.csv`` from the Kaggle archive into ``workdir``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "twcs.csv"]
            if not names:
                raise FetchError(f"{archive}: the Kaggle archive has no twcs.csv (members: "
                                 f"{', '.join(zf.namelist()[:5])}). Retry the download; if it "
                                 "persists, download it by hand and use --source file. " + _FALLBACK)
            bad = zf.testzip()
            if bad is not None:
                raise FetchError(f"{archive}: corrupt member {bad} in the Kaggle archive (CRC "
                                 "mismatch): the download was damaged. Retry. " + _FALLBACK)
            out = workdir / "twcs.csv"
            with zf.open(names[0]) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return out
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive}: the downloaded file is not a valid zip archive ({exc}); the "
                         "download was truncated or damaged. Retry. " + _FALLBACK) from None


def fetch_kaggle(target: Path, dataset: str,
                 client_factory: Callable[[], KaggleClient] | None = None,
                 check_credentials: bool = True) -> dict[str, Any]:
    """Download, unzip, check and atomically install the full ``twcs.csv``."""
    if check_credentials and not kaggle_credentials_present():
        raise _no_credentials(dataset)
    factory = client_factory or default_kaggle_client
    # a temp folder named like every temp output, so that a killed download (hundreds of MB) is
    # removed by the next fetch (scrm.io.cleanup_stale_tmp)
    tmp_prefix = sio.TMP_PREFIX + "kaggle-"
    with tempfile.TemporaryDirectory(prefix=tmp_prefix, dir=target.parent) as tmpdir:
        work = Path(tmpdir)
        during_auth = True
        try:
            with _silenced():
                api = factory()
                api.authenticate()
                during_auth = False
                api.dataset_download_files(dataset, path=str(work), force=True, quiet=True,
                                           unzip=False)
        except FetchError as exc:
            raise FetchError(redact(str(exc))) from None
        except (SystemExit, Exception) as exc:  # kaggle raises many types; it may sys.exit on auth
            raise _classify(exc, dataset, during_auth) from None
        try:
            zips = sorted(work.glob("*.zip"))
            csvs = sorted(work.glob("**/twcs.csv"))
            if zips:
                src = extract_twcs(zips[0], work)
            elif csvs:
                src = csvs[0]
            else:
                raise FetchError(f"Kaggle reported success but no archive arrived in {work}. "
                                 "Retry. " + _FALLBACK)
            size = src.stat().st_size
            install(src, target, copy=lambda a, b: os.replace(a, b))
        except FetchError as exc:  # names of archive members etc.: redacted like the rest
            raise FetchError(redact(str(exc))) from None
    return {"source": "kaggle", "dataset": dataset, "bytes": size,
            "expected_full_bytes": FULL_FILE_BYTES, "size_matches_published": size == FULL_FILE_BYTES}


# --------------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------------
def input_path(settings: FetchSettings, root: Path) -> Path:
    """``fetch.path`` as a file: ``~`` expanded, a relative path taken from the run root (where
    params.yaml and dvc.yaml are, so DVC watches the same file)."""
    path = Path(settings.path).expanduser()
    return path if path.is_absolute() else root / path


def fetch(target: Path, settings: FetchSettings,
          client_factory: Callable[[], KaggleClient] | None = None) -> dict[str, Any]:
    """Put a checked ``twcs.csv`` at ``target`` from ``settings.source``; returns facts about it for
    the metrics file. ``settings.path`` (source ``file``) is used as given (relative to the current
    folder); :func:`run` resolves it against the run root first."""
    source = settings.source
    target.parent.mkdir(parents=True, exist_ok=True)
    sio.cleanup_stale_tmp(target.parent)
    if source == "sample":
        install(SAMPLE_CSV, target)
        info: dict[str, Any] = {"source": "sample", "file": SAMPLE_CSV.name}
    elif source == "file":
        if not settings.path:
            raise FetchError("--source file needs --path PATH_TO/twcs.csv (or fetch.path in "
                             "params.yaml).")
        src = Path(settings.path).expanduser()
        if not src.exists():
            raise FetchError(f"{src}: file not found.")
        install(src, target)
        info = {"source": "file", "file": src.name}
    elif source == "kaggle":
        info = fetch_kaggle(target, dataset=settings.dataset, client_factory=client_factory)
    elif source == "synthetic":
        from .synthetic import generate  # noqa: PLC0415

        with sio.atomic_path(target) as tmp:
            generate(tmp, rows=settings.rows, seed=settings.seed)
            check_header(tmp)
        info = {"source": "synthetic", "rows_requested": settings.rows, "seed": settings.seed}
    else:
        raise FetchError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}.")
    info["bytes"] = target.stat().st_size
    info["rows"] = count_rows(target)
    info["sha256"] = sio.sha256_file(target)
    return info


def run(paths: Paths, settings: FetchSettings) -> dict[str, Any]:
    """DVC stage ``fetch``: a checked ``data/raw/twcs.csv`` and ``reports/metrics/fetch.json``."""
    paths.ensure()
    resolved = settings.replace(path=str(input_path(settings, paths.root)))
    info = {**status.ok(), **fetch(paths.raw_csv, resolved)}  # a file it cannot use is an error
    sio.write_json(paths.metric("fetch"), info)
    return info
