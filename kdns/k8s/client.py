"""HTTP access to one Kubernetes API server: where it is, how to authenticate, GET and streaming GET.

Configuration follows CoreDNS's kubernetes plugin: `kubeconfig FILE [CONTEXT]` wins, else `endpoint
URL` (optionally with `tls CERT KEY CACERT`), else in-cluster (service account token + CA and
KUBERNETES_SERVICE_HOST/PORT, as client-go's rest.InClusterConfig). Requests go through kdns.http1
(h11 over asyncio streams, one connection per request); the `kubernetes` package (the optional
`kubeconfig` extra) is used only to read kubeconfig files, never to make requests or parse objects.

Bound service-account tokens expire (about an hour; the kubelet rewrites the file well before). The
token file is therefore re-read whenever its stat changes, and a 401 forces a re-read and one retry,
as client-go's cached token source does.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from kdns import __version__
from kdns.http1 import client as http
from kdns.log import plugin_logger

log = plugin_logger("kubernetes")

USER_AGENT = f"kdns/{__version__}"
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICEACCOUNT_DIR_ENV = "KDNS_SERVICEACCOUNT_DIR"  # kdns-only: tests and rehearsals point it elsewhere

#: Dial timeout; client-go's default transport also uses 30 s.
CONNECT_TIMEOUT = 30.0


class ApiConfigError(Exception):
    """The API connection cannot be configured (missing file, bad URL, bad kubeconfig)."""


class ApiError(Exception):
    """The API server answered with an HTTP error status (a Kubernetes Status object, usually)."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @classmethod
    def from_body(cls, status: int, body: bytes, headers: Mapping[str, str]) -> ApiError:
        reason, message = "", body[:200].decode(errors="replace").strip()
        try:
            obj = json.loads(body)
            if isinstance(obj, dict):
                reason, message = str(obj.get("reason") or ""), str(obj.get("message") or "")
        except ValueError:
            pass
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        return cls(status, reason or _http_reason(status), message, parse_retry_after(value))


def _http_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.replace(" ", "")
    except ValueError:
        return "Error"


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110 §10.2.3); the HTTP-date form is not used by the API server."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Auth(Protocol):
    """The Authorization header for the next request, and a way to refresh it after a 401."""

    async def header(self) -> str | None: ...

    async def refresh(self) -> None: ...


class StaticAuth:
    """A fixed header (or none: plain-http test servers and client-certificate auth)."""

    def __init__(self, header: str | None = None) -> None:
        self._header = header

    async def header(self) -> str | None:
        return self._header

    async def refresh(self) -> None:
        return None


class TokenFileAuth:
    """Bearer token read from a file, re-read when the file changes (stat) or after a 401.

    The kubelet replaces projected tokens by swapping a symlink, so the stat (which follows links)
    changes on every rotation. A file that vanishes or empties for a moment keeps the old token.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._token = ""
        try:
            self._load(force=True)
        except OSError as exc:
            raise ApiConfigError(f"service account token {path}: {exc.strerror or exc}") from exc
        if not self._token:
            raise ApiConfigError(f"service account token {path} is empty")

    def _load(self, *, force: bool) -> None:
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if force or stamp != self._stamp:
            token = self.path.read_text().strip()
            self._stamp = stamp
            if token:
                if self._token and token != self._token:
                    log.info("service account token %s changed, using the new one", self.path)
                self._token = token

    def _reload(self, *, force: bool) -> None:
        try:
            self._load(force=force)
        except OSError as exc:
            log.warning(
                "cannot re-read service account token %s: %s; keeping the previous one", self.path, exc
            )

    async def header(self) -> str | None:
        self._reload(force=False)
        return f"Bearer {self._token}"

    async def refresh(self) -> None:
        self._reload(force=True)


class KubeconfigAuth:
    """Credentials from a kubeconfig, via the `kubernetes` package (token, tokenFile, basic, exec).

    The package's Configuration refreshes expiring exec/OIDC credentials in get_api_key_with_prefix,
    which may run a subprocess, so it is called off the event loop. A 401 reloads the whole file.
    """

    def __init__(self, path: str, context: str | None, cfg: Any) -> None:
        self.path, self.context, self._cfg = path, context, cfg

    async def header(self) -> str | None:
        value = await asyncio.to_thread(self._cfg.get_api_key_with_prefix, "BearerToken")
        return str(value) if value else None

    async def refresh(self) -> None:
        try:
            self._cfg = await asyncio.to_thread(load_kubeconfig, self.path, self.context)
        except ApiConfigError as exc:
            log.warning("cannot reload %s: %s; keeping the previous credentials", self.path, exc)


def load_kubeconfig(path: str, context: str | None) -> Any:
    """kubernetes.client.Configuration filled from a kubeconfig file (and context).

    The `kubernetes` package is an optional extra (about 130 MB with its dependencies): a Pod uses
    in-cluster config, so the image leaves it out, and only a `kubeconfig` option needs it.
    """
    try:
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
    except ImportError as exc:
        raise ApiConfigError(
            f"kubeconfig {path}: reading kubeconfig files needs the Python package 'kubernetes', "
            "which is not installed (pip install 'kdns[kubeconfig]')"
        ) from exc
    _check_file("kubeconfig", path)
    cfg = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except Exception as exc:  # the package raises ConfigException, ValueError, KeyError, yaml errors…
        raise ApiConfigError(f"kubeconfig {path}: {exc}") from exc
    return cfg


def _check_file(what: str, path: str) -> None:
    """ApiConfigError naming `what` unless `path` is a file. is_file() is False for a missing path
    but raises for one the system refuses outright (a name over NAME_MAX): that is an error too."""
    try:
        if Path(path).is_file():
            return
        why = "no such file"
    except OSError as e:
        why = e.strerror or str(e)
    raise ApiConfigError(f"{what} {path}: {why}")


def _ssl_context(
    *, ca: str | None = None, cert: str | None = None, key: str | None = None, verify: bool = True
) -> ssl.SSLContext:
    """Client TLS context; each file is checked so the error names the one that is wrong."""
    for what, path in (("CA certificate", ca), ("client certificate", cert), ("client key", key)):
        if path:
            _check_file(what, path)
    try:
        ctx = ssl.create_default_context(cafile=ca or None)
        if cert:
            ctx.load_cert_chain(cert, key or None)
    except (ssl.SSLError, OSError) as exc:
        raise ApiConfigError(f"TLS files (ca={ca}, cert={cert}, key={key}): {exc}") from exc
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _check_url(url: str, what: str) -> str:
    try:
        http.Origin.split(url)
    except ValueError as exc:
        raise ApiConfigError(f"{what} {exc}") from None
    return url.rstrip("/")


class LineStream:
    """Newline-delimited JSON of one watch response, read line by line.

    Lines are split here rather than with StreamReader.readline(), which rejects lines longer than
    its 64 KiB buffer limit; one event for an EndpointSlice with thousands of endpoints is megabytes.
    """

    def __init__(self, read_chunk: Callable[[], Awaitable[bytes]]) -> None:
        self._read_chunk = read_chunk  # the next bytes of the body, b"" at its end
        self._buf = bytearray()
        self._start = 0  # first unread byte of _buf
        self._scan = 0  # bytes before this offset are known to hold no newline

    async def readline(self) -> bytes | None:
        """The next line (without newline); None when the server ended the stream cleanly.

        Raises HttpError when the connection drops mid-stream (kdns.http1.client), TimeoutError when
        no byte arrives for the request's read timeout, and TruncatedStream when a clean end cuts a line.
        """
        while True:
            nl = self._buf.find(b"\n", self._scan)
            if nl >= 0:
                line = bytes(self._buf[self._start : nl])
                self._start = self._scan = nl + 1
                return line
            if self._start:  # drop consumed lines once per chunk, not once per line
                del self._buf[: self._start]
                self._start = 0
            self._scan = len(self._buf)
            chunk = await self._read_chunk()
            if not chunk:
                if self._buf.strip():
                    raise TruncatedStream(f"stream ended inside a line ({len(self._buf)} bytes)")
                return None
            self._buf += chunk


class TruncatedStream(Exception):
    """A watch stream ended cleanly but in the middle of an event."""


class ApiClient:
    """One API server: base URL, TLS, credentials; each request on its own connection."""

    def __init__(
        self,
        base_url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        auth: Auth | None = None,
        server_hostname: str | None = None,
        proxy: str | None = None,
        source: str = "",
    ) -> None:
        self.base_url = _check_url(base_url, "API server")
        self.source = source or f"endpoint {self.base_url}"
        self._ssl = ssl_context
        self._auth: Auth = auth or StaticAuth()
        self._server_hostname = server_hostname
        try:
            self._proxy = http.Proxy.parse(proxy) if proxy else None
        except ValueError as exc:
            raise ApiConfigError(str(exc)) from exc
        self._open: set[asyncio.StreamWriter] = set()  # connections in use, dropped by close()

    @classmethod
    def from_options(
        cls,
        *,
        endpoint: str | None = None,
        tls: tuple[str, str, str] | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
    ) -> ApiClient:
        """Configuration as CoreDNS: kubeconfig, else endpoint (+ tls), else in-cluster."""
        if kubeconfig:
            return cls._from_kubeconfig(kubeconfig, context)
        if endpoint:
            url = _check_url(endpoint, "endpoint")
            ctx = None
            if tls is not None:
                cert, key, ca = tls
                ctx = _ssl_context(ca=ca, cert=cert, key=key)
            elif url.startswith("https:"):
                ctx = _ssl_context()
            return cls(url, ssl_context=ctx, source=f"endpoint {url}")
        if tls is not None:
            raise ApiConfigError("tls needs endpoint (in-cluster config uses the service account CA)")
        return cls._in_cluster()

    @classmethod
    def _in_cluster(cls) -> ApiClient:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ApiConfigError(
                "no API server configured: not running in a cluster (KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT are not set); use endpoint URL or kubeconfig FILE"
            )
        sa_dir = Path(os.environ.get(SERVICEACCOUNT_DIR_ENV) or SERVICEACCOUNT_DIR)
        ca = sa_dir / "ca.crt"
        if not ca.is_file():
            raise ApiConfigError(f"in-cluster config: service account CA {ca} not found")
        auth = TokenFileAuth(sa_dir / "token")
        netloc = f"[{host}]" if ":" in host else host
        url = f"https://{netloc}:{port}"
        return cls(url, ssl_context=_ssl_context(ca=str(ca)), auth=auth, source=f"in-cluster {url}")

    @classmethod
    def _from_kubeconfig(cls, path: str, context: str | None) -> ApiClient:
        cfg = load_kubeconfig(path, context)
        host = str(cfg.host or "")
        if not host:
            raise ApiConfigError(f"kubeconfig {path}: the cluster has no server")
        ctx = None
        if host.startswith("https:"):
            ctx = _ssl_context(
                ca=cfg.ssl_ca_cert, cert=cfg.cert_file, key=cfg.key_file, verify=bool(cfg.verify_ssl)
            )
        return cls(
            host,
            ssl_context=ctx,
            auth=KubeconfigAuth(path, context, cfg),
            server_hostname=getattr(cfg, "tls_server_name", None) or None,
            proxy=getattr(cfg, "proxy", None) or None,
            source=f"kubeconfig {path}" + (f" context {context}" if context else ""),
        )

    @asynccontextmanager
    async def _get(
        self, path: str, params: Mapping[str, str] | None, read_timeout: float
    ) -> AsyncIterator[http.Response]:
        """GET with credentials; a 401 refreshes them and retries once. Raises ApiError on ≥ 300."""
        url = self.base_url + path
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        for attempt in (1, 2):
            headers = [("User-Agent", USER_AGENT), ("Accept", "application/json")]
            auth = await self._auth.header()
            if auth:
                headers.append(("Authorization", auth))
            async with http.get(
                url,
                headers,
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=read_timeout,
                ssl_context=self._ssl,
                server_hostname=self._server_hostname,
                proxy=self._proxy,
                opened=self._open,
            ) as resp:
                if resp.status < 300:
                    yield resp
                    return
                try:
                    body = await resp.read()
                except (http.HttpError, OSError, TimeoutError):
                    body = b""
            if resp.status == 401 and attempt == 1:
                await self._auth.refresh()
                continue
            raise ApiError.from_body(resp.status, body, resp.headers)

    async def get_json(
        self, path: str, params: Mapping[str, str] | None = None, *, read_timeout: float = 60.0
    ) -> dict[str, Any]:
        """GET a JSON object (a list page). read_timeout bounds each wait for bytes, not the total."""
        async with self._get(path, params, read_timeout) as resp:
            body = await resp.read()
        obj = json.loads(body)
        if not isinstance(obj, dict):
            raise ValueError(f"GET {path}: expected a JSON object, got {type(obj).__name__}")
        return obj

    @asynccontextmanager
    async def stream(
        self, path: str, params: Mapping[str, str] | None = None, *, read_timeout: float
    ) -> AsyncIterator[LineStream]:
        """A streaming GET (watch): yields a LineStream; no byte for read_timeout seconds raises.
        Leaving early aborts the connection."""
        async with self._get(path, params, read_timeout) as resp:
            yield LineStream(resp.read_chunk)

    async def close(self) -> None:
        """Drop the connections still open (a watch still streaming ends with an error)."""
        for writer in list(self._open):
            writer.transport.abort()
