"""A kdns process synced from the test API server, and the checks the fault and soak tests share:
exact comparison with the oracle, polling until exact, and a prober thread that keeps asking while a
fault plays out."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from tests.plugins.kubernetes import oracle
from tests.plugins.kubernetes.oracle import Answer, Question
from tests.support.apiserver import ApiServer, RecordedRequest
from tests.support.dnsclient import ask
from tests.support.ports import free_port
from tests.support.process import KdnsProcess

COREFILE = """\
.:{port} {
    bind 127.0.0.1
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        %(source)s
        %(extra)s
    }
    ready 127.0.0.1:%(ready)d
}
"""
KINDS = ("Namespace", "Service", "EndpointSlice")
PATHS = {
    "Namespace": "/api/v1/namespaces",
    "Service": "/api/v1/services",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/endpointslices",
}
CL = "svc.cluster.local."
SYNC_TIMEOUT = 40.0  # generous: reconnect backoff grows during an outage, and the machine is shared


class Harness:
    """The API server, a kdns synced from it, and the oracle's view of both.

    `state()` reads the API server's objects and remembers them, so the questions asked cover every
    name any state so far gave rise to, including names that should be gone."""

    def __init__(self, api: ApiServer, dns: KdnsProcess, ready_port: int) -> None:
        self.api, self.dns, self.ready_port = api, dns, ready_port
        self.history: list[oracle.Obj] = []

    @property
    def port(self) -> int:
        return self.dns.port

    def state(self) -> Sequence[oracle.Obj]:
        objs = [obj for kind in KINDS for obj in self.api.objects(kind)]
        self.history.extend(objs)
        return objs

    def questions(self) -> list[Question]:
        return oracle.questions(self.history)

    def want(self, state: Sequence[oracle.Obj]) -> dict[Question, Answer]:
        return oracle.expected(state, self.questions())

    def check(self, state: Sequence[oracle.Obj], what: str) -> None:
        """Every answer now is exactly the oracle's for `state`."""
        want = self.want(state)
        diffs = oracle.differences(oracle.observe(self.port, want), want)
        assert not diffs, f"{what}: {len(diffs)} wrong answers:\n" + "\n".join(diffs[:40])

    def wait(self, state: Sequence[oracle.Obj], what: str, timeout: float = SYNC_TIMEOUT) -> None:
        """Poll until every answer is the oracle's for `state` (prints how long it took)."""
        want = self.want(state)
        t0 = time.monotonic()
        while True:
            got = oracle.observe(self.port, want)
            diffs = oracle.differences(got, want)
            if not diffs:
                break
            if time.monotonic() - t0 > timeout:
                raise AssertionError(
                    f"{what}: still {len(diffs)} wrong answers after {timeout}s:\n"
                    + "\n".join(diffs[:40])
                    + "\n--- kdns log (tail) ---\n"
                    + self.dns.logs()[-3000:]
                )
            time.sleep(0.05)
        print(f"{what}: exact after {(time.monotonic() - t0) * 1000:.0f} ms")

    def ready(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ready_port}/ready", timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)


class Prober(threading.Thread):
    """Asks `allowed`'s questions over and over from another thread while a fault plays out; every
    reply that is not one of the allowed answers for its question is kept in `bad`."""

    def __init__(self, port: int, allowed: Mapping[Question, set[Answer]]) -> None:
        super().__init__(daemon=True)
        self.port, self.allowed = port, allowed
        self.bad: list[tuple[float, Question, Answer]] = []
        self.rounds = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            allowed = self.allowed  # a test may widen it between rounds
            for q, answers in allowed.items():
                try:
                    got = oracle.to_answer(ask(self.port, q[0], q[1], payload=4096, timeout=5.0))
                except Exception as e:  # a timeout is a wrong answer too
                    got = Answer(f"no reply: {type(e).__name__}")
                if got not in answers:
                    self.bad.append((time.monotonic(), q, got))
            self.rounds += 1

    def __enter__(self) -> Prober:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(30)

    def assert_clean(self) -> None:
        assert self.rounds > 0, "the prober never completed a round"
        shown = "\n".join(f"{q[0]} {q[1]}: {a}" for _, q, a in self.bad[:20])
        assert not self.bad, f"{len(self.bad)} wrong answers in {self.rounds} rounds:\n{shown}"
        print(f"prober: {self.rounds} rounds of {len(self.allowed)} questions, all right")


def either(
    h: Harness, before: Sequence[oracle.Obj], after: Sequence[oracle.Obj]
) -> dict[Question, set[Answer]]:
    """Per question, the answers right at some moment of a transition from `before` to `after`."""
    w0, w1 = h.want(before), h.want(after)
    return {q: {w0[q], w1[q]} for q in w0}


def stable(
    h: Harness, before: Sequence[oracle.Obj], after: Sequence[oracle.Obj]
) -> dict[Question, set[Answer]]:
    """The names whose records are the same before and after: their only right answer."""
    w0, w1 = h.want(before), h.want(after)
    return {q: {a} for q, a in w0.items() if a == w1[q] and a.records}


def requests_since(api: ApiServer, t: float, *, watch: bool | None = None) -> list[RecordedRequest]:
    return [r for r in api.requests(watch=watch) if r.time >= t]


def lists_since(api: ApiServer, t: float) -> set[str]:
    """Paths listed (non-watch GETs) since monotonic time t."""
    return {r.path for r in requests_since(api, t, watch=False)}


def start(
    kdns: Callable[..., KdnsProcess],
    api: ApiServer,
    extra: str = "",
    source: str | None = None,
    env: dict[str, str] | None = None,
) -> Harness:
    """A kdns process (from the `kdns` fixture) following `api`; `source=""` leaves the API to the
    in-cluster configuration that `env` describes."""
    ready_port = free_port()
    src = f"endpoint {api.url}" if source is None else source
    text = COREFILE % {"source": src, "extra": extra, "ready": ready_port}
    return Harness(api, kdns(text, env=env), ready_port)
