"""What a template sees: CoreDNS's templateData (`.Name`, `.Group`…), and the parts of miekg/dns's
Question and Msg that `.Question` and `.Message` expose."""

from __future__ import annotations

from kdns.plugins._text import qclass_text, qtype_text
from kdns.plugins.template.gotemplate import Method, Struct
from kdns.request import Request

# The top-level fields, for checking templates when they are parsed.
FIELDS = ("Zone", "Name", "Regex", "Match", "Group", "Class", "Type", "Message", "Question", "Remote",
          "Var", "Meta")  # fmt: skip


class Question(Struct):
    go_type = "*dns.Question"

    def text(self) -> str:
        """miekg/dns's Question.String(), as `{{ .Question }}` prints it."""
        f = self.fields
        return f";{f['Name']}\t{qclass_text(int(str(f['Qclass'])))}\t {qtype_text(int(str(f['Qtype'])))}"


class Message(Struct):
    go_type = "*dns.Msg"


class TemplateData(Struct):
    go_type = "*template.templateData"


def template_data(request: Request, zone: str, regex: str, match: list[str], group: dict[str, str],
                  qclass: str, qtype: str) -> TemplateData:  # fmt: skip
    """The data for one matching query (CoreDNS's template.match)."""
    q = request.message.q
    question = Question(Name=str(q.qname), Qtype=int(q.qtype), Qclass=int(q.qclass))
    h = request.message.header
    message = Message(
        Id=int(h.id), Response=bool(h.qr), Opcode=int(h.opcode), Authoritative=bool(h.aa),
        Truncated=bool(h.tc), RecursionDesired=bool(h.rd), RecursionAvailable=bool(h.ra),
        AuthenticatedData=bool(h.ad), CheckingDisabled=bool(h.cd), Rcode=int(h.rcode), Question=[question],
    )  # fmt: skip
    return TemplateData(
        Zone=zone, Name=request.qname_lower, Regex=regex, Match=match, Group=group, Class=qclass, Type=qtype,
        Message=message, Question=question, Remote=request.client[0], Var={},
        # kdns has no metadata plugin: every name is unset, "" (CoreDNS without metadata does the same).
        Meta=Method(lambda name: "", 1),
    )  # fmt: skip
