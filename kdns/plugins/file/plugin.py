"""`file DBFILE [ZONES...] { reload DURATION }` — serve an RFC 1035 zone file authoritatively.

As CoreDNS's file plugin: ZONES default to the server block's zones, each parsed from DBFILE with
that zone as the origin; a relative DBFILE is relative to the working directory; the file is
re-read every `reload` (default 1m, 0 disables) and a new zone is taken only when it parses and its
SOA serial changed (CoreDNS reload.go). kdns also watches $INCLUDEd files, reads only when a file's
mtime or size changed, and logs `file:line` of a broken edit while it keeps serving the old zone.
"""

from __future__ import annotations

import asyncio

from kdns.corefile.model import Directive
from kdns.log import plugin_logger
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins._args import expect_args, parse_duration, unknown_property, zones_or_default
from kdns.plugins._watch import Poller, Signature, file_signature
from kdns.plugins.file.zone import Zone
from kdns.plugins.file.zonefile import ZoneFileError
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request

DEFAULT_RELOAD = 60.0  # CoreDNS: "Default is one minute"
log = plugin_logger("file")


class FilePlugin(Plugin):
    name = "file"

    def __init__(self, path: str, zones: dict[str, Zone], reload: float) -> None:
        self.path = path
        self.zones = zones
        self._origins = tuple(zones)
        self._watched = {origin: zone.files for origin, zone in zones.items()}
        self._signatures = {origin: file_signature(zone.files) for origin, zone in zones.items()}
        self._poller = Poller(reload, self.check_files, log)

    async def serve(self, request: Request, next_: Handler) -> Reply:
        origin = zone_matches(request.qname_lower, self._origins)
        if origin is None:
            return await next_(request)
        result = self.zones[origin].lookup(request.owner, request.qtype)
        msg = request.reply(rcode=result.rcode, aa=result.aa)
        msg.add_answer(*result.answer)
        msg.add_auth(*result.authority)
        msg.add_ar(*result.additional)
        return Reply(msg, self.name)

    def transparent_for(self, qname: str) -> bool:
        return zone_matches(qname, self._origins) is None

    async def start(self) -> None:
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()

    async def check_files(self) -> None:
        """One reload round: re-read each zone whose files changed since the last look."""
        for origin in self._origins:
            before = file_signature(self._watched[origin])
            if before != self._signatures[origin]:
                await self._reload(origin, before)

    async def _reload(self, origin: str, before: Signature) -> None:
        old = self.zones[origin]
        try:
            new = await asyncio.to_thread(Zone.load, self.path, origin)
        except ZoneFileError as e:
            self._remember(origin, e.files or self._watched[origin], before)
            log.error('Failed to reload zone "%s" from "%s": %s; still serving serial %d',
                      origin, self.path, e, old.serial)  # fmt: skip
            return
        self._remember(origin, new.files, before)
        _log_warnings(new)
        if new.serial == old.serial:
            log.warning('Zone "%s" in "%s" changed but its SOA serial is still %d: not reloaded '
                        "(bump the serial)", origin, self.path, old.serial)  # fmt: skip
            return
        self.zones[origin] = new
        log.info('Successfully reloaded zone "%s" in "%s" with %d SOA serial', origin, self.path, new.serial)

    def _remember(self, origin: str, files: tuple[str, ...], before: Signature) -> None:
        """Note what was read; a file written while we parsed still differs from `before` next time."""
        same_files = files == self._watched[origin]
        self._watched[origin] = files
        self._signatures[origin] = before if same_files else file_signature(files)


def _log_warnings(zone: Zone) -> None:
    for warning in zone.warnings:
        log.warning("%s", warning)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 1)
    path = args[0]
    origins = zones_or_default(d, args[1:], ctx.block.zones)
    reload = DEFAULT_RELOAD
    for child in d.children:
        if child.name != "reload":
            raise unknown_property(d, child)
        (text,) = expect_args(child, 1, 1)
        reload = parse_duration(child, text, "reload interval")
    zones: dict[str, Zone] = {}
    for origin in origins:
        try:
            zones[origin] = Zone.load(path, origin)
        except ZoneFileError as e:
            raise d.error(f"cannot load zone {origin} from {path}: {e}") from None
        _log_warnings(zones[origin])
    return FilePlugin(path, zones, reload)
