"""`template CLASS TYPE [ZONES...] { match REGEX...; answer RR; additional RR; authority RR;
rcode CODE; ederror CODE [REASON]; fallthrough [ZONES...] }` — answers built from Go templates,
as CoreDNS's template plugin (see docs/plugins.md).

Every `template` line of a server block is one template of a single plugin, tried in order.
"""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext
from kdns.plugins.template.parse import parse_template
from kdns.plugins.template.plugin import TemplatePlugin


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    lines = ctx.block.find(d.name) or [d]
    return TemplatePlugin([parse_template(line, ctx.block.zones) for line in lines], ctx.controller)
