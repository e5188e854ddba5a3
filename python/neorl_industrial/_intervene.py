"""``neorl-industrial intervene``: a small client for a serving process's control endpoints.

    neorl-industrial intervene http://127.0.0.1:8000 pause --reason inspection --operator ana
    neorl-industrial intervene URL override --envs 0,3 --value 0.2 --reason "valve test"
    neorl-industrial intervene URL list
    neorl-industrial intervene URL reload [--path new.zip]

Credentials for a web-config'd exporter: ``--user`` and the password in ``--password-file`` or
``NEORL_INDUSTRIAL_PASSWORD``. Exit status: 0 when the service applied the request, 1 when it
refused it (the reason is printed), 2 when it could not be asked (usage, connection, TLS).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .exceptions import ConfigError

ACTIONS = ("pause", "resume", "shutdown", "override", "release", "list", "reload")


def add_parser(sub: Any) -> None:
    i = sub.add_parser("intervene", help="pause, resume, shut down or override a serving process")
    i.add_argument("url", help="the exporter's base URL, e.g. http://127.0.0.1:8000")
    i.add_argument("action", choices=ACTIONS)
    i.add_argument("--reason", default=None, help="why (required except for list and reload)")
    i.add_argument("--operator", default=None, help="who (default: the login name)")
    i.add_argument("--envs", default=None, help="env indices, comma-separated (override, release)")
    i.add_argument("--value", default=None, help="the normalised action, comma-separated (override)")
    i.add_argument("--path", default=None, help="reload: the model file to load (default: the same)")
    i.add_argument("--user", default=None, help="basic auth user")
    i.add_argument("--password-file", default=None, help="basic auth password file")
    i.add_argument("--ca-file", default=None, help="CA bundle for an https URL")
    i.add_argument("--timeout", type=float, default=150.0, help="seconds to wait for the answer")


def _numbers(text: str, what: str, kind: type) -> list[Any]:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--{what}: expected comma-separated numbers, got {text!r}") from None


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """(method, path, JSON body) for the action."""
    if args.action == "list":
        return "GET", "/interventions", None
    if args.action == "reload":
        return "POST", "/admin/reload", {} if args.path is None else {"path": args.path}
    if not args.reason:
        raise ConfigError(f"--reason: {args.action} needs a reason")
    body: dict[str, Any] = {
        "action": args.action,
        "reason": args.reason,
        "operator": args.operator or getpass.getuser(),
    }
    if args.envs is not None:
        body["envs"] = _numbers(args.envs, "envs", int)
    if args.value is not None:
        body["value"] = _numbers(args.value, "value", float)
    return "POST", "/interventions", body


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            return Path(args.password_file).read_text().rstrip("\n")
        except OSError as e:
            raise ConfigError(f"--password-file: cannot read {args.password_file}: {e.strerror}") from None
    password = os.environ.get("NEORL_INDUSTRIAL_PASSWORD")
    if password is None:
        raise ConfigError("--user: give the password in --password-file or NEORL_INDUSTRIAL_PASSWORD")
    return password


def intervene(args: argparse.Namespace) -> int:
    method, path, body = _request(args)
    url = args.url.rstrip("/") + path
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"url: must start with http:// or https://, got {args.url!r}")
    headers = {"Content-Type": "application/json"}
    if args.user:
        token = base64.b64encode(f"{args.user}:{_password(args)}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    context = ssl.create_default_context(cafile=args.ca_file) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(req, timeout=args.timeout, context=context) as r:
            print(json.dumps(json.loads(r.read()), indent=2))
            return 0
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            answer = json.loads(text)
            reason = answer.get("error") or answer.get("reason") or text
        except (ValueError, AttributeError):
            reason = text.strip()
        print(f"neorl-industrial: {method} {path} refused ({e.code}): {reason}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        raise ConfigError(f"url: cannot reach {url}: {getattr(e, 'reason', e)}") from None
