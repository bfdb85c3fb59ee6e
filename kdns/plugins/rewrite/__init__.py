"""`rewrite [continue|stop] FIELD …` — change queries before the later plugins see them, and their
replies on the way back, as CoreDNS's rewrite plugin (see docs/plugins.md for every rule).

Every `rewrite` line of a server block is one rule of a single plugin, in the order written. A
query is given to each rule in turn; a rule that applies changes it and, in `stop` mode (the
default), ends the list. The later plugins get the changed query; their reply gets the client's
question back and the applied rules' response rules, in reverse order.
"""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext
from kdns.plugins.rewrite.parse import parse_rule
from kdns.plugins.rewrite.plugin import Rewrite


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    return Rewrite([parse_rule(line) for line in ctx.block.find(d.name) or [d]], ctx.controller)
