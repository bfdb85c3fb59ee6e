"""The Python fuzz targets; each module has `prepare()` and `one_input(data: bytes)`, which raises
on a finding. A target's corpus is fuzz/corpus/<name>/."""

TARGETS = ("packet", "corefile", "zonefile")
