"""The `file` plugin: authoritative zones from RFC 1035 master files.

zonefile.py parses the file format, zone.py holds one zone and answers from it, plugin.py is the
Corefile directive (setup, serving, reloads).
"""

from kdns.plugins.file.plugin import FilePlugin, setup

__all__ = ["FilePlugin", "setup"]
