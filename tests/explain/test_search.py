"""The names a Pod's resolver asks for one name (glibc's res_search with kubelet's resolv.conf)."""

from __future__ import annotations

from kdns.explain.search import candidates
from kdns.plugins.kubernetes.names import pod_search_domains

SEARCH = pod_search_domains("shop", "cluster.local.")


def test_kubelet_search_domains() -> None:
    assert SEARCH == ("shop.svc.cluster.local.", "svc.cluster.local.", "cluster.local.")
    assert pod_search_domains("shop", ".") == ("shop.svc.", "svc.", ".")


def test_short_names_take_the_search_domains_first() -> None:
    assert candidates("web", SEARCH) == [
        "web.shop.svc.cluster.local.", "web.svc.cluster.local.", "web.cluster.local.", "web."]
    # 4 dots is still fewer than ndots:5: the famous extra queries for a Service's full name.
    assert candidates("web.shop.svc.cluster.local", SEARCH) == [
        "web.shop.svc.cluster.local.shop.svc.cluster.local.", "web.shop.svc.cluster.local.svc.cluster.local.",
        "web.shop.svc.cluster.local.cluster.local.", "web.shop.svc.cluster.local."]


def test_names_with_ndots_dots_are_tried_as_they_are_first() -> None:
    assert candidates("a.b.c.d.e.f", SEARCH) == [
        "a.b.c.d.e.f.", "a.b.c.d.e.f.shop.svc.cluster.local.", "a.b.c.d.e.f.svc.cluster.local.",
        "a.b.c.d.e.f.cluster.local."]
    assert candidates("a.b.c", SEARCH, ndots=2)[0] == "a.b.c."


def test_absolute_names_are_asked_alone() -> None:
    assert candidates("web.shop.svc.cluster.local.", SEARCH) == ["web.shop.svc.cluster.local."]
    # An escaped final dot belongs to the label: the name is not absolute.
    assert candidates("web\\.", SEARCH)[-1] == "web\\.."
    assert candidates("web\\\\.", SEARCH) == ["web\\\\."]  # an escaped backslash, then the dot
