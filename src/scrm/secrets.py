"""Kaggle credentials: where they live, whether any are present, and how to keep them out of text.

The one module that knows every place the ``kaggle`` client reads credentials from, in its own order:
``$KAGGLE_USERNAME``/``$KAGGLE_KEY``, ``kaggle.json`` of ``$KAGGLE_CONFIG_DIR`` (else ``~/.kaggle``),
and the newer API token (``$KAGGLE_API_TOKEN``, the token itself or a file holding it, or a file
``access_token`` beside kaggle.json). The fetch stage uses it to say early that credentials are missing
and to redact its error messages; tracking uses it to drop any logged value that holds a credential.
Nothing here imports the kaggle package.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["kaggle_credentials_present", "known_secrets", "redact"]

_MIN_SECRET_LEN = 4     # shorter strings are not redacted: they would mangle ordinary text


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    return dict(os.environ) if env is None else dict(env)


def _config_dirs(env: Mapping[str, str]) -> list[Path]:
    dirs = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    return [*dirs, Path.home() / ".kaggle"]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return ""


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON file's object, or {} when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(_read(path) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _access_token(env: Mapping[str, str]) -> str:
    """kaggle >= 1.8 API token: $KAGGLE_API_TOKEN (the token, or a file holding it) or a file
    ``access_token`` beside kaggle.json."""
    tok = env.get("KAGGLE_API_TOKEN", "").strip()
    if tok:
        with contextlib.suppress(OSError, ValueError):
            if len(tok) < 4096 and Path(tok).is_file():
                return _read(Path(tok))
        return tok
    for d in _config_dirs(env):
        for name in ("access_token", "access_token.txt"):
            tok = _read(d / name)
            if tok:
                return tok
    return ""


def kaggle_credentials_present(env: Mapping[str, str] | None = None) -> bool:
    """Whether the kaggle client would find credentials (kaggle.json of the first config folder
    only, as kaggle itself reads it)."""
    env = _environment(env)
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return True
    if _access_token(env):
        return True
    data = _json_object(_config_dirs(env)[0] / "kaggle.json")
    return bool(data.get("username") and data.get("key"))


def known_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Every credential the kaggle client could use, in the forms it may show up in a message
    (plain, and base64 of ``user:key`` as in an HTTP basic-auth header); longest first."""
    env = _environment(env)
    files = [_json_object(d / "kaggle.json") for d in _config_dirs(env)]
    users = [env.get("KAGGLE_USERNAME", ""), *(str(f.get("username") or "") for f in files)]
    keys = [env.get("KAGGLE_KEY", ""), *(str(f.get("key") or "") for f in files),
            _access_token(env)]
    keys = [k for k in keys if k and len(k) >= _MIN_SECRET_LEN]
    out = list(keys)
    for u in users:
        for k in keys:
            out.append(base64.b64encode(f"{u}:{k}".encode()).decode())
    return sorted(set(out), key=len, reverse=True)


def redact(text: str) -> str:
    """Replace every known credential in ``text`` by ``***``."""
    for s in known_secrets():
        text = text.replace(s, "***")
    return text
