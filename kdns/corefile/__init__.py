"""Corefile parsing: text → tokens → server blocks of directives, with file:line errors."""

from kdns.corefile.errors import CorefileError
from kdns.corefile.model import Corefile, Directive, ServerAddress, ServerBlock
from kdns.corefile.parser import parse_corefile, parse_file

__all__ = [
    "Corefile",
    "CorefileError",
    "Directive",
    "ServerAddress",
    "ServerBlock",
    "parse_corefile",
    "parse_file",
]
