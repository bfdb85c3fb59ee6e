"""The one error type a bad Corefile produces; it always says where."""


class CorefileError(Exception):
    """A Corefile problem, rendered as CoreDNS does: `FILE:LINE - Error during parsing: MSG`."""

    def __init__(self, message: str, file: str = "Corefile", line: int = 0, directive: str = "") -> None:
        self.message = message
        self.file = file
        self.line = line
        self.directive = directive
        where = f"{file}:{line}" if line else file
        what = f"'{directive}': " if directive else ""
        super().__init__(f"{where} - Error during parsing: {what}{message}")
