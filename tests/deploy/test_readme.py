"""deploy/README.md shows the commands CI runs, word for word."""

from __future__ import annotations

from pathlib import Path

from kdns import __version__
from tests.rehearsal.image import BUILD_COMMAND

README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"


def _command_lines() -> list[str]:
    """The lines of the README's ```sh blocks."""
    lines, inside = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            inside = line == "```sh"
        elif inside:
            lines.append(line)
    return lines


def test_the_rehearsal_builds_the_image_with_the_readmes_command() -> None:
    assert " ".join(BUILD_COMMAND) in _command_lines()


def test_the_docker_build_is_the_dockerfile_on_the_source_tree() -> None:
    assert f"docker build -t kdns:{__version__} ." in _command_lines()
