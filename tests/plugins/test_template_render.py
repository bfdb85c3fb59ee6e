"""The Go text/template subset kdns's template plugin renders: what it accepts and prints as Go
does, and what it refuses when the Corefile is read."""

from __future__ import annotations

import re

import pytest

from kdns.plugins.template.gotemplate import FUNCTIONS, ExecError, Method, Struct, TemplateError, parse


class Data(Struct):
    go_type = "*template.templateData"


def data() -> Data:
    inner = Data(Name="q.example.", Qtype=1)
    return Data(
        Name="foo.example.", Match=["ip-10-1-2-3.example.", "10", "1"],
        Group={"a": "0a", "b": "7b", "0": "x"}, Question=inner, Meta=Method(lambda name: f"<{name}>", 1),
        Var={}, Id=42,
    )  # fmt: skip


FIELDS = dict.fromkeys(("Name", "Match", "Group", "Question", "Meta", "Var", "Id"))


def render(text: str) -> str:
    return parse(text, tuple(FUNCTIONS), FIELDS).render(data())


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{{ .Name }} 60 IN A 1.2.3.4", "foo.example. 60 IN A 1.2.3.4"),
        ("{{.Name}}", "foo.example."),
        ("{{ index .Match 1 }}.{{ index .Match 2 }}", "10.1"),
        ("{{ .Group.a }}-{{ .Group.missing }}", "0a-<no value>"),  # Go's missingkey=default
        ('{{ index .Group "missing" }}|', "|"),  # index gives the zero value
        ("{{ parseInt .Group.b 16 8 }}", "123"),
        ('{{ parseInt "0x1f" 0 0 }}', "31"),
        ('{{ .Group.a | printf "%s!" }}', "0a!"),
        ('{{ printf "%03d-%x-%q" 7 255 .Name }}', '007-ff-"foo.example."'),
        ("{{ len .Match }} {{ len .Name }}", "3 12"),
        ("{{ slice .Name 0 3 }}", "foo"),
        ('{{ print 1 2 "a" 3 }}', "1 2a3"),  # Sprint: spaces only between non-strings
        ('{{ .Meta "kubernetes/client-namespace" }}', "<kubernetes/client-namespace>"),
        ("{{ .Question.Name }} {{ .Question.Qtype }}", "q.example. 1"),
        ("{{ .Match }} {{ .Group }}", "[ip-10-1-2-3.example. 10 1] map[0:x a:0a b:7b]"),
        ("a {{- .Id -}} b", "a42b"),
        ("a {{/* a comment */}}b", "a b"),
        ("{{ (index .Match 1) | len }}", "2"),
        ('{{ `raw\\n` }}{{ "tab\\t" }}', "raw\\ntab\t"),
        ("{{ .Var.x }}", "<no value>"),
    ],
)
def test_renders_as_go(text: str, out: str) -> None:
    assert render(text) == out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ if .Name }}x{{ end }}", "{{if}} is not supported by kdns"),
        ("{{ range .Match }}{{ . }}{{ end }}", "{{range}} is not supported"),
        ("{{ $x := .Name }}", "variables ($x) are not supported"),
        ("{{ upper .Name }}", 'function "upper" not defined'),
        ("{{ .Nope }}", "can't evaluate field Nope"),
        ("{{ .Name ", "unclosed action"),
        ("{{ }}", "missing value for command"),
        ("{{ (index .Match 1 }}", "unclosed left paren"),
        ("{{ 1.5 }}", "the number 1.5 is not supported"),
        ("{{ true }}", "the literal true is not supported"),
        ("{{ 'a' }}", "character constants ('a') are not supported"),
        ('{{ "bad\\q" }}', "invalid syntax in string"),
        ("{{ parseInt .Group.a 16 }}", "wrong number of args for parseInt: want 3 got 2"),
        ("{{ .Group.a | parseInt }}", "wrong number of args for parseInt: want 3 got 1"),
        ("{{ len }}", "wrong number of args for len: want 1 got 0"),
    ],
)
def test_refused_at_parse_time(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        parse(text, tuple(FUNCTIONS), FIELDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ index .Match 5 }}", "error calling index: index out of range: 5"),
        ("{{ parseInt .Group.b 10 8 }}", 'parsing "7b": invalid syntax'),
        ('{{ parseInt "300" 10 8 }}', 'parsing "300": value out of range'),
        ("{{ .Name | .Name }}", "can't give argument to non-function"),
        ("{{ .Name 1 }}", "Name is not a method but has arguments"),
        ("{{ .Question }}", "printing a *template.templateData is not supported"),
    ],
)
def test_execution_errors(text: str, message: str) -> None:
    with pytest.raises(ExecError, match=re.escape(message)):
        render(text)
