"""What the Envoys egobs runs hold: ``egobs config``, ``egobs stats`` and ``egobs collect``.

The control plane's ``/debug/status`` names, per Gateway, the Envoy egobs runs for it (host
infra) with its node id and admin address; everything else is read from that Envoy's own
admin interface, as ``egctl config envoy-proxy`` reads a pod's.

Redaction is the rule for everything printed or archived here:

* Envoy's ``/config_dump`` already replaces sensitive fields (private keys) with
  ``[redacted]``; :func:`redact` does it again, so no private key leaves through a field
  Envoy does not mark sensitive, an Envoy that forgot, or a text member of a bundle.
* A private key is recognised in any string, in PEM (``-----BEGIN ... PRIVATE KEY-----``)
  or base64-encoded PEM (a Kubernetes Secret's ``data``, Envoy's ``inline_bytes``), and
  under the keys ``private_key``/``privateKey``/``tls.key`` whatever it looks like.

Usage::

    envoys = host_envoys(status_doc, "default/eg")
    dump = redact(fetch_json(envoys[0].url + "/config_dump?include_eds"))
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_TYPES",
    "REDACTED",
    "STATS_TYPES",
    "Bundle",
    "EnvoyAdmin",
    "FetchError",
    "NoEnvoy",
    "collect",
    "config_section",
    "error_reason",
    "every_host_envoy",
    "fetch",
    "fetch_json",
    "gateway_ref",
    "host_envoys",
    "redact",
    "redact_text",
    "stats_path",
]

REDACTED = "[redacted]"

# `egobs config envoy-proxy GATEWAY TYPE`: the config_dump entry each type picks, by the
# last part of its @type (type.googleapis.com/envoy.admin.v3.<name>). None: all of it.
CONFIG_TYPES: dict[str, str | None] = {
    "all": None,
    "bootstrap": "BootstrapConfigDump",
    "cluster": "ClustersConfigDump",
    "listener": "ListenersConfigDump",
    "route": "RoutesConfigDump",
    "endpoint": "EndpointsConfigDump",
    "secret": "SecretsConfigDump",
}

# `egobs stats envoy-proxy --type`: the stat-name prefix Envoy's admin filters on (a regex
# on the stat name, before Prometheus renaming). None: every stat.
STATS_TYPES: dict[str, str | None] = {
    "all": None,
    "server": r"^server\.",
    "clusters": r"^cluster\.",
}


class NoEnvoy(Exception):
    """The Gateway has no Envoy egobs runs whose admin can be read (the message says why)."""


class FetchError(Exception):
    """An admin endpoint did not answer, or not with what was asked for."""


@dataclass(frozen=True, slots=True)
class EnvoyAdmin:
    """One Envoy egobs runs: the Gateway it serves, its node id and admin address."""

    gateway: str  # namespace/name
    node: str
    address: str  # host:port
    log_path: str | None = None  # its log file, on the control plane's host

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def gateway_ref(gateway: str, namespace: str | None) -> str:
    """``NS/NAME`` from ``NS/NAME`` or ``NAME`` (in ``namespace``, default ``default``);
    ValueError when both name a namespace and they differ, or the name is empty."""
    ns, sep, name = gateway.partition("/")
    if not sep:
        ns, name = namespace or "default", gateway
    elif namespace is not None and namespace != ns:
        raise ValueError(f"{gateway!r} is in namespace {ns!r}, but -n says {namespace!r}")
    if not ns or not name or "/" in name:
        raise ValueError(f"{gateway!r}: expected NAMESPACE/NAME or NAME")
    return f"{ns}/{name}"


def host_envoys(status: Mapping[str, Any], gateway: str) -> list[EnvoyAdmin]:
    """The running Envoys egobs runs for ``gateway`` (``NS/NAME``), from a ``/debug/status``
    document; :class:`NoEnvoy` saying why when there is none."""
    proxies = {p["name"]: p for p in status.get("proxies", [])}
    proxy = proxies.get(gateway)
    if proxy is None:
        served = ", ".join(sorted(proxies)) or "none"
        raise NoEnvoy(
            f"Gateway {gateway} is not served by this control plane (served: {served}); "
            "see `egobs status gateway`"
        )
    return [_envoy(proxy)]


def every_host_envoy(status: Mapping[str, Any]) -> tuple[list[EnvoyAdmin], list[str]]:
    """Every running Envoy egobs runs, from a ``/debug/status`` document, and why each
    other proxy has none."""
    envoys, skipped = [], []
    for proxy in status.get("proxies", []):
        try:
            envoys.append(_envoy(proxy))
        except NoEnvoy as exc:
            skipped.append(str(exc))
    return envoys, skipped


def _envoy(proxy: Mapping[str, Any]) -> EnvoyAdmin:
    gateway = proxy["name"]
    infra = proxy.get("infra")
    if not infra or infra.get("state") == "external":
        raise NoEnvoy(
            f"Gateway {gateway} has no Envoy run by egobs (infra.type External?): read your "
            "Envoy's own admin /config_dump and /stats"
        )
    if infra.get("state") != "running" or not infra.get("adminPort"):
        raise NoEnvoy(
            f"the Envoy of Gateway {gateway} is {infra.get('state')}, not running; see "
            "`egobs status gateway`"
        )
    host = infra.get("adminHost") or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return EnvoyAdmin(
        gateway=gateway,
        node=infra.get("nodeId") or gateway,
        address=f"{host}:{infra['adminPort']}",
        log_path=infra.get("logPath"),
    )


def fetch(url: str, *, timeout: float = 10.0, headers: Mapping[str, str] | None = None) -> bytes:
    """The body of GET ``url``; :class:`FetchError` naming the URL otherwise."""
    try:
        request = urllib.request.Request(url, headers=dict(headers or {}))
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{url}: {error_reason(exc)}") from None


def error_reason(exc: BaseException) -> object:
    """Why a request failed, briefly: the OS's words for a socket error ("Connection
    refused"), else urllib's reason, else the exception itself."""
    reason = getattr(exc, "reason", exc)
    return getattr(reason, "strerror", None) or reason


def fetch_json(url: str, *, timeout: float = 10.0) -> Any:
    body = fetch(url, timeout=timeout)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise FetchError(f"{url}: not JSON ({exc})") from None


def config_section(dump: Mapping[str, Any], config_type: str) -> Any:
    """The part of an Envoy ``/config_dump`` that ``config_type`` (a :data:`CONFIG_TYPES`
    key) picks; the whole dump for ``all``, ``{}`` when Envoy has none of it."""
    wanted = CONFIG_TYPES[config_type]
    if wanted is None:
        return dump
    for entry in dump.get("configs", []):
        if str(entry.get("@type", "")).rsplit(".", 1)[-1] == wanted:
            return entry
    return {}


def stats_path(stats_type: str, output: str) -> str:
    """The Envoy admin path for ``egobs stats``: ``/stats/prometheus`` (prom) or
    ``/stats?format=json`` (json), filtered to ``stats_type``'s prefix."""
    from urllib.parse import quote

    params = [] if output == "prom" else ["format=json"]
    prefix = STATS_TYPES[stats_type]
    if prefix is not None:
        params.append("filter=" + quote(prefix, safe=""))
    path = "/stats/prometheus" if output == "prom" else "/stats"
    return path + ("?" + "&".join(params) if params else "")


# --------------------------------------------------------------------------- redaction

_SENSITIVE_KEYS = frozenset({"private_key", "privateKey", "tls.key"})
_PEM_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S
)
# Long enough to hold an encoded "-----BEGIN PRIVATE KEY-----" line.
_BASE64 = re.compile(r"[A-Za-z0-9+/]{36,}={0,2}")


def _encodes_key(text: str) -> bool:
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b"PRIVATE KEY-----" in decoded


def redact_text(text: str) -> str:
    """``text`` with every PEM private key, plain or base64-encoded, replaced."""
    text = _PEM_KEY.sub(REDACTED, text)
    return _BASE64.sub(lambda m: REDACTED if _encodes_key(m[0]) else m[0], text)


def redact(data: Any) -> Any:
    """A copy of JSON-like ``data`` with private keys replaced by :data:`REDACTED` (see the
    module docstring)."""
    if isinstance(data, Mapping):
        return {
            k: (REDACTED if k in _SENSITIVE_KEYS and data[k] else redact(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact(v) for v in data]
    if isinstance(data, str):
        return redact_text(data)
    return data


# --------------------------------------------------------------------------- support bundle

# How much of each Envoy's log the bundle keeps: the end, where the trouble usually is.
_LOG_TAIL_BYTES = 256 * 1024


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


@dataclass
class Bundle:
    """A support bundle being collected: members are redacted as they are added, and every
    endpoint that did not answer is recorded in ``errors`` rather than ending the run.

    Usage::

        bundle = Bundle()
        bundle.add_url("controlplane/metrics.txt", admin + "/metrics")
        bundle.write(Path("bundle.tar.gz"))
    """

    members: dict[str, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, and why
    fetcher: Callable[[str], bytes] = fetch

    def add_json(self, name: str, data: Any) -> None:
        self.members[name] = (json.dumps(redact(data), indent=2) + "\n").encode()

    def add_text(self, name: str, text: str) -> None:
        self.members[name] = redact_text(text).encode()

    def add_url(self, name: str, url: str) -> None:
        """GET ``url`` into ``name`` (JSON when the name ends in .json, else text)."""
        try:
            body = self.fetcher(url)
            if name.endswith(".json"):
                self.add_json(name, json.loads(body))
            else:
                self.add_text(name, body.decode(errors="replace"))
        except (FetchError, ValueError) as exc:
            self.errors.append(f"{name}: {exc}")

    def add_envoy(self, envoy: EnvoyAdmin) -> None:
        """An Envoy's config dump (with endpoints), stats, server info, and the end of its
        log when it is a readable local file."""
        base = f"proxies/{_safe(envoy.node)}"
        self.add_url(f"{base}/config_dump.json", envoy.url + "/config_dump?include_eds")
        self.add_url(f"{base}/stats.txt", envoy.url + "/stats")
        self.add_url(f"{base}/server_info.json", envoy.url + "/server_info")
        if envoy.log_path:
            try:
                with open(envoy.log_path, "rb") as f:
                    f.seek(0, io.SEEK_END)
                    f.seek(max(0, f.tell() - _LOG_TAIL_BYTES))
                    tail = f.read()
            except OSError as exc:
                self.errors.append(f"{base}/envoy.log: {envoy.log_path}: {exc.strerror or exc}")
            else:
                self.add_text(f"{base}/envoy.log", tail.decode(errors="replace"))

    def write(self, path: Path, *, manifest: Mapping[str, Any]) -> None:
        """The tar.gz: every member under ``egobs-bundle/``, plus ``manifest.json`` (what
        was collected, from where, what failed and what was left out)."""
        doc = {
            **manifest,
            "members": sorted(self.members),
            "errors": self.errors,
            "notes": self.notes,
        }
        members = {**self.members, "manifest.json": (json.dumps(doc, indent=2) + "\n").encode()}
        now = time.time()
        with tarfile.open(path, "w:gz") as tar:
            for name, body in sorted(members.items()):
                info = tarfile.TarInfo(f"egobs-bundle/{name}")
                info.size = len(body)
                info.mtime = int(now)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(body))


def collect(
    admin_url: str, status: Mapping[str, Any], *, headers: Mapping[str, str] | None = None
) -> Bundle:
    """The control plane's debug documents and metrics, and every Envoy it runs (from
    ``status``, its ``/debug/status`` already read), into a new :class:`Bundle`.
    ``headers`` (the admin token) go to the control plane only, never to an Envoy."""

    def fetcher(url: str) -> bytes:
        return fetch(url, headers=headers if url.startswith(admin_url + "/") else None)

    bundle = Bundle(fetcher=fetcher)
    bundle.add_json("controlplane/debug-status.json", status)
    bundle.add_url("controlplane/debug-syncz.json", admin_url + "/debug/syncz")
    bundle.add_url("controlplane/debug-config-dump.json", admin_url + "/debug/config_dump")
    bundle.add_url("controlplane/metrics.txt", admin_url + "/metrics")
    bundle.add_url("controlplane/recent.log", admin_url + "/debug/logs")
    envoys, skipped = every_host_envoy(status)
    bundle.notes.extend(skipped)
    for envoy in envoys:
        bundle.add_envoy(envoy)
    return bundle
