"""An explanation as a person reads it. Works on the JSON form (what `--json` prints and the explain
directive serves), so the command renders a running server's answer and its own alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

JSON = Mapping[str, Any]


def render(data: JSON) -> str:
    lines = [_question(data), ""]
    tried: Sequence[JSON] = data["tried"]
    width = max(len(a["name"]) for a in tried)
    for a in tried:
        mark = "  <- answers" if a["name"] == data["answered_by"] else ""
        lines.append(f"  {a['name']:<{width}}  {a['rcode']:<8}  {_author(a)}{mark}")
    focus = next(a for a in tried if a["name"] == data["explained"])
    lines += ["", f"{focus['name']} {data['type']}: {focus['rcode']}, {_where(focus)}"]
    lines += [f"  {rr}" for rr in focus["answer"]]
    if not focus["answered"]:
        lines += [f"  authority: {rr}" for rr in focus["authority"]]
    lines += [f"  Extended DNS Error {e['code']} ({e['name']})" for e in focus["extended_errors"]]
    if data["reason"]:
        lines.append(f"Why: {data['reason']}")
    if data["cluster"]:
        lines += ["", *_cluster(data["cluster"])]
    if data["hint"]:
        lines += ["", f"Hint: {data['hint']}"]
    return "\n".join(lines) + "\n"


def _question(data: JSON) -> str:
    q = f"{data['name']} {data['type']} (via {data['listener']})"
    if data["namespace"] is None:
        return q
    search = " ".join(data["search"])
    return f"{q}, as a Pod in namespace {data['namespace']} asks (search {search}; ndots:{data['ndots']})"


def _author(attempt: JSON) -> str:
    if attempt["rcode"] == "no reply":
        return "no reply (dropped)"
    return f"plugin/{attempt['plugin']}" if attempt["plugin"] else "the server"


def _where(attempt: JSON) -> str:
    zones = " ".join(attempt["server_block"])
    if attempt["plugin"]:
        return f"written by plugin/{attempt['plugin']} of the server block for {zones}"
    if zones:
        return f"written by the server for the server block for {zones}"
    return "written by the server: no server block serves this name"


def _cluster(detail: JSON) -> list[str]:
    lines: list[str] = []
    ns = detail["namespace"]
    if ns is not None:
        state = "exists" if ns["exists"] else "does not exist"
        lines.append(f"Namespace {ns['name']}: {state}{'' if ns['served'] else ', not served'}")
    svc = detail["service"]
    if svc is not None:
        lines.append(f"Service {svc['namespace']}/{svc['name']}: {_service(svc)}")
        for sl in detail["endpoint_slices"]:
            ports = ", ".join(sl["ports"]) or "no ports"
            lines.append(f"  EndpointSlice {sl['name']} ({sl['address_type']}; {ports})")
            for ep in sl["endpoints"]:
                lines.append(f"    {_endpoint(ep)}")
    if detail["notes"]:
        lines.append("Notes:")
        lines += [f"  - {note}" for note in detail["notes"]]
    return lines


def _service(svc: JSON) -> str:
    if svc["type"] == "ExternalName":
        return f"ExternalName -> {svc['external_name'] or '(empty)'}"
    addresses = "headless" if svc["headless"] else ", ".join(svc["cluster_ips"])
    parts = [f"{svc['type']} {addresses}"]
    parts.append("selector" if svc["selector"] else "no selector")
    if svc["publish_not_ready_addresses"]:
        parts.append("publishNotReadyAddresses")
    parts.append(f"ports {', '.join(svc['ports'])}" if svc["ports"] else "no ports")
    return "; ".join(parts)


def _endpoint(ep: JSON) -> str:
    who = [f"name {ep['name']}"]
    if ep["pod"]:
        who.append(f"pod {ep['pod']}")
    flags = " ".join(f"{c}={'yes' if ep[c] else 'no'}" for c in ("ready", "serving", "terminating"))
    return f"{', '.join(ep['addresses'])}  {' '.join(who)}  [{flags}]  {ep['why']}"
