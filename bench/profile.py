"""Where kdns spends its time under load: py-spy's raw (collapsed-stack) output, summed per function.

py-spy is a bench-only tool, installed into the running interpreter's environment on first use
(`pip install py-spy`); it is not a dependency of kdns or its tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME_LINE = re.compile(r":\d+\)$")


def py_spy() -> str:
    """Path of py-spy next to this interpreter, installing it there if missing."""
    here = Path(sys.executable).parent / "py-spy"
    if not here.exists() and shutil.which("py-spy") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    return str(here) if here.exists() else str(shutil.which("py-spy"))


def _function(frame: str) -> str:
    """`Kubernetes.serve (kdns/plugins/kubernetes/plugin.py:100)` → without the line number."""
    return _FRAME_LINE.sub(")", frame)


def profile_summary(raw: str, top: int = 25) -> str:
    """Self time (the sampled frame itself) and inclusive time (anywhere on the stack) per function,
    as shares of all samples py-spy took while kdns was busy."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        frames, count = m.group(1).split(";"), int(m.group(2))
        total += count
        own[_function(frames[-1])] += count
        for fn in {_function(f) for f in frames}:
            inclusive[fn] += count
    if not total:
        return "no samples"

    def block(title: str, counts: Counter[str]) -> list[str]:
        return [title] + [f"  {n / total:6.1%}  {fn}" for fn, n in counts.most_common(top)]

    skip = {fn for fn in inclusive if inclusive[fn] == total}  # the event loop's own frames: 100%
    return "\n".join(
        [
            f"{total} samples",
            *block("self time:", own),
            "",
            *block("inclusive time:", Counter({k: v for k, v in inclusive.items() if k not in skip})),
        ]
    )
