"""ApiClient configuration sources (endpoint, in-cluster, kubeconfig, tls), credentials and errors."""

from __future__ import annotations

import base64
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kdns import __version__
from kdns.http1.client import HttpError
from kdns.k8s.client import ApiClient, ApiConfigError, ApiError, TokenFileAuth
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.proxy import ForwardProxy

SVC = "/api/v1/services"
IN_CLUSTER_ENV = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KDNS_SERVICEACCOUNT_DIR")


@pytest.fixture(autouse=True)
def _no_cluster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in IN_CLUSTER_ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def tls_api(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tls=True, tokens=["t1"], basic_auth=("admin", "pw"), workdir=tmp_path) as api:
        api.add(o.service("web"))
        yield api


@pytest.fixture
async def closing() -> AsyncIterator[list[ApiClient]]:
    clients: list[ApiClient] = []
    yield clients
    for c in clients:
        await c.close()


async def list_names(client: ApiClient) -> list[str]:
    body = await client.get_json(SVC)
    return [i["metadata"]["name"] for i in body["items"]]


async def test_endpoint_http_needs_no_credentials(apiserver: ApiServer, closing: list[ApiClient]) -> None:
    apiserver.add(o.service("web"))
    client = ApiClient.from_options(endpoint=apiserver.url + "/")
    closing.append(client)
    assert client.base_url == apiserver.url
    assert await list_names(client) == ["web"]
    [req] = apiserver.requests(SVC)
    assert req.headers["User-Agent"] == f"kdns/{__version__}" and "Authorization" not in req.headers


async def test_stream_reads_lines_and_api_errors_carry_status(
    apiserver: ApiServer, closing: list[ApiClient]
) -> None:
    client = ApiClient.from_options(endpoint=apiserver.url)
    closing.append(client)
    apiserver.add(o.service("a"))
    async with client.stream(
        SVC, {"watch": "1", "resourceVersion": "0", "timeoutSeconds": "1"}, read_timeout=10
    ) as stream:
        first = await stream.readline()
        assert first is not None and json.loads(first)["object"]["metadata"]["name"] == "a"
        assert await stream.readline() is None  # clean end at timeoutSeconds
    with pytest.raises(ApiError) as err:
        await client.get_json("/api/v1/nothing")
    assert err.value.status == 404 and err.value.reason == "NotFound"
    apiserver.fail_next(1, 429, retry_after=7)
    with pytest.raises(ApiError) as err:
        await client.get_json(SVC)
    assert (err.value.status, err.value.retry_after) == (429, 7.0)


async def test_in_cluster_over_tls_with_token_rotation(
    tls_api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closing: list[ApiClient]
) -> None:
    sa = tmp_path / "sa"
    for key, value in tls_api.in_cluster_env(sa, "t1").items():
        monkeypatch.setenv(key, value)
    client = ApiClient.from_options()
    closing.append(client)
    assert client.base_url == f"https://127.0.0.1:{tls_api.port}" and client.source.startswith("in-cluster")
    assert await list_names(client) == ["web"]
    # The kubelet rotates the token: the file changes, the next request uses the new one (no 401).
    tls_api.rotate_token("t2-rotated")
    (sa / "token").write_text("t2-rotated\n")
    assert await list_names(client) == ["web"]
    auths = [r.headers.get("Authorization") for r in tls_api.requests(SVC)]
    assert auths == ["Bearer t1", "Bearer t2-rotated"]


async def test_401_forces_a_token_reread_and_one_retry(
    tls_api: ApiServer, tmp_path: Path, closing: list[ApiClient]
) -> None:
    token = tmp_path / "token"
    token.write_text("t1")
    client = ApiClient(tls_api.url, auth=TokenFileAuth(token), ssl_context=_ctx(tls_api))
    closing.append(client)
    assert await list_names(client) == ["web"]
    # Rewrite in place with the same size and mtime: the stat check cannot see it, only a 401 can.
    st = token.stat()
    token.write_text("t3")
    os.utime(token, ns=(st.st_atime_ns, st.st_mtime_ns))
    tls_api.rotate_token("t3")
    assert await list_names(client) == ["web"]
    auths = [r.headers.get("Authorization") for r in tls_api.requests(SVC)]
    assert auths == ["Bearer t1", "Bearer t1", "Bearer t3"]
    # A token that stays wrong: one retry, then the 401 is reported (no loop).
    tls_api.rotate_token("t4")
    with pytest.raises(ApiError) as err:
        await client.get_json(SVC)
    assert err.value.status == 401 and len(tls_api.requests(SVC)) == 5


async def test_token_file_vanishing_keeps_the_last_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_text("t1")
    auth = TokenFileAuth(token)
    token.unlink()
    with caplog.at_level(logging.WARNING, logger="kdns"):
        assert await auth.header() == "Bearer t1"
    assert "keeping the previous one" in caplog.text


def _kubeconfig(
    tmp_path: Path, server: str, users: dict[str, dict[str, str]], cluster: dict[str, str], current: str
) -> str:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, **cluster}}],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": {"cluster": "test", "user": n}} for n in users],
        "current-context": current,
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(cfg))  # JSON is valid YAML
    return str(path)


async def test_kubeconfig_token_and_context(
    tls_api: ApiServer, tmp_path: Path, closing: list[ApiClient]
) -> None:
    assert tls_api.ca_path is not None
    path = _kubeconfig(
        tmp_path,
        tls_api.url,
        {"good": {"token": "t1"}, "bad": {"token": "wrong"}},
        {"certificate-authority": str(tls_api.ca_path)},
        current="bad",
    )
    good = ApiClient.from_options(kubeconfig=path, context="good", endpoint="http://ignored:1")
    current = ApiClient.from_options(kubeconfig=path)
    closing.extend([good, current])
    assert good.base_url == tls_api.url  # kubeconfig takes precedence over endpoint
    assert await list_names(good) == ["web"]
    with pytest.raises(ApiError) as err:
        await list_names(current)  # current-context "bad" has a wrong token
    assert err.value.status == 401
    with pytest.raises(ApiConfigError, match="nope"):
        ApiClient.from_options(kubeconfig=path, context="nope")


async def test_kubeconfig_basic_auth_and_inline_ca(
    tls_api: ApiServer, tmp_path: Path, closing: list[ApiClient]
) -> None:
    assert tls_api.ca_path is not None
    ca_data = base64.b64encode(tls_api.ca_path.read_bytes()).decode()
    path = _kubeconfig(
        tmp_path,
        tls_api.url,
        {"admin": {"username": "admin", "password": "pw"}},
        {"certificate-authority-data": ca_data},
        current="admin",
    )
    client = ApiClient.from_options(kubeconfig=path)
    closing.append(client)
    assert await list_names(client) == ["web"]
    assert tls_api.requests(SVC)[0].headers["Authorization"].startswith("Basic ")


async def test_kubeconfig_client_certificate(
    tls_api: ApiServer, tmp_path: Path, closing: list[ApiClient]
) -> None:
    cert, key, ca = tls_api.client_cert_files(tmp_path)
    path = _kubeconfig(
        tmp_path,
        tls_api.url,
        {"cert": {"client-certificate": cert, "client-key": key}},
        {"certificate-authority": ca},
        current="cert",
    )
    client = ApiClient.from_options(kubeconfig=path)
    closing.append(client)
    assert await list_names(client) == ["web"]
    assert "Authorization" not in tls_api.requests(SVC)[0].headers


async def test_kubeconfig_proxy_url_tunnels_to_the_server(
    tls_api: ApiServer, tmp_path: Path, closing: list[ApiClient]
) -> None:
    assert tls_api.ca_path is not None
    async with ForwardProxy() as proxy:
        path = _kubeconfig(
            tmp_path,
            tls_api.url,
            {"good": {"token": "t1"}},
            {"certificate-authority": str(tls_api.ca_path), "proxy-url": proxy.url},
            current="good",
        )
        client = ApiClient.from_options(kubeconfig=path)
        closing.append(client)
        assert await list_names(client) == ["web"]
    assert proxy.heads and proxy.heads[0].startswith(f"CONNECT 127.0.0.1:{tls_api.port} ")


async def test_close_drops_an_open_watch(apiserver: ApiServer) -> None:
    client = ApiClient.from_options(endpoint=apiserver.url)
    async with client.stream(SVC, {"watch": "1", "resourceVersion": "0"}, read_timeout=30) as stream:
        await client.close()
        with pytest.raises(HttpError, match="connection closed before the response ended"):
            await stream.readline()


async def test_endpoint_https_with_tls_files(
    tls_api: ApiServer, tmp_path: Path, closing: list[ApiClient]
) -> None:
    cert, key, ca = tls_api.client_cert_files(tmp_path)
    client = ApiClient.from_options(endpoint=tls_api.url, tls=(cert, key, ca))
    untrusted = ApiClient.from_options(endpoint=tls_api.url)  # system CAs do not know the test CA
    closing.extend([client, untrusted])
    assert await list_names(client) == ["web"]
    with pytest.raises(ssl.SSLCertVerificationError):
        await list_names(untrusted)


def test_no_configuration_outside_a_cluster() -> None:
    with pytest.raises(ApiConfigError, match="KUBERNETES_SERVICE_HOST"):
        ApiClient.from_options()


def test_in_cluster_missing_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv("KDNS_SERVICEACCOUNT_DIR", str(tmp_path))
    with pytest.raises(ApiConfigError, match=f"{tmp_path}/ca.crt"):
        ApiClient.from_options()
    (tmp_path / "ca.crt").write_text("x")
    with pytest.raises(ApiConfigError, match=f"{tmp_path}/token"):
        ApiClient.from_options()
    (tmp_path / "token").write_text("  \n")
    with pytest.raises(ApiConfigError, match="empty"):
        ApiClient.from_options()
    (tmp_path / "token").write_text("t")
    with pytest.raises(ApiConfigError, match="TLS files"):
        ApiClient.from_options()  # ca.crt is not a certificate


def test_bad_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ApiConfigError, match="no such file"):
        ApiClient.from_options(kubeconfig=str(tmp_path / "missing"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("this: [is not a kubeconfig")
    with pytest.raises(ApiConfigError, match=str(bad)):
        ApiClient.from_options(kubeconfig=str(bad))
    with pytest.raises(ApiConfigError, match=r"CA certificate .*/nope-ca\.crt: no such file"):
        ApiClient.from_options(
            endpoint="https://127.0.0.1:6443", tls=("c", "k", str(tmp_path / "nope-ca.crt"))
        )
    (tmp_path / "ca.crt").write_text("x")
    with pytest.raises(ApiConfigError, match=r"client certificate .*/nope\.crt: no such file"):
        ApiClient.from_options(
            endpoint="https://127.0.0.1:6443", tls=(str(tmp_path / "nope.crt"), "k", str(tmp_path / "ca.crt"))
        )
    with pytest.raises(ApiConfigError, match="tls needs endpoint"):
        ApiClient.from_options(tls=("a", "b", "c"))
    for url in ("ftp://x", "127.0.0.1:6443", "http://"):
        with pytest.raises(ApiConfigError, match="endpoint"):
            ApiClient.from_options(endpoint=url)


def test_api_error_from_a_status_body() -> None:
    body = json.dumps({"kind": "Status", "code": 503, "reason": "ServiceUnavailable", "message": "busy"})
    err = ApiError.from_body(503, body.encode(), {"Retry-After": "2"})
    assert (err.status, err.reason, err.message, err.retry_after) == (503, "ServiceUnavailable", "busy", 2.0)
    plain = ApiError.from_body(502, b"<html>bad gateway</html>", {})
    assert plain.reason == "BadGateway" and plain.retry_after is None and "bad gateway" in str(plain)


def _ctx(api: ApiServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(api.ca_path))


class _Chunks:
    """Stands in for a response's read_chunk: hands out the given chunks, then b"" (clean end)."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def read_chunk(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


async def test_line_stream_splits_lines_across_and_within_chunks() -> None:
    from kdns.k8s.client import LineStream, TruncatedStream

    big = b"x" * 200_000  # longer than StreamReader.readline()'s 64 KiB limit
    chunks = _Chunks(b"a\nb", b"c\n\nd", big[:100_000], big[100_000:] + b"\n")
    stream = LineStream(chunks.read_chunk)
    lines = []
    while (line := await stream.readline()) is not None:
        lines.append(line)
    assert lines == [b"a", b"bc", b"", b"d" + big]
    cut = LineStream(_Chunks(b'{"type": "ADD').read_chunk)
    with pytest.raises(TruncatedStream):
        await cut.readline()


def test_paths_the_system_refuses_are_clear_errors(tmp_path: Path) -> None:
    """Regression (fuzz/targets/corefile.py): is_file() raised OSError for a name over NAME_MAX, which
    escaped the kubernetes plugin's setup instead of becoming a Corefile error."""
    long = str(tmp_path / ("x" * 300))
    with pytest.raises(ApiConfigError, match=r"kubeconfig .*: File name too long"):
        ApiClient.from_options(kubeconfig=long)
    with pytest.raises(ApiConfigError, match=r"CA certificate .*: File name too long"):
        ApiClient.from_options(endpoint="https://127.0.0.1:6443", tls=("c", "k", long))


@pytest.mark.parametrize("url", ["http://[::1:6443", "https://10.0.0.1:99999", "http://api:port", "http://a:0"])
def test_endpoints_that_are_no_urls_are_clear_errors(url: str) -> None:
    """Regression (fuzz/targets/corefile.py): urlsplit's ValueError escaped the kubernetes plugin's
    setup; a port out of range was found only when connecting."""
    with pytest.raises(ApiConfigError, match="want http://HOST"):
        ApiClient.from_options(endpoint=url)
