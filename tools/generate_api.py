"""Generate zoom-s2s's typed API and its operations table from Zoom's OpenAPI specs.

    python tools/generate_api.py            # rewrite the generated files
    python tools/generate_api.py --check    # exit 1 if a generated file is not current
    python tools/generate_api.py --vendor DIR   # refresh specs/zoom/ from Zoom's files in DIR

Inputs: ``specs/zoom/*.json`` (see ``specs/zoom/README.rst``). Outputs:
``zoom_s2s/ratelimit/_operations.py`` (the operations table),
``zoom_s2s/api/{__init__,meetings,users,accounts,chat,phone,marketplace}.py``
and ``docs/api/*.rst``. The naming scheme is in ``docs/api/index.rst``.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs" / "zoom"

# Spec files, newest first: where two describe one operation, the first wins.
SOURCES = (
    ("users", "users"),
    ("team-chat", "chat"),
    ("accounts", "accounts"),
    ("marketplace", "marketplace"),
    ("meetings", "meetings"),
    ("phone", "phone"),
)
# Products reached through one attribute of the client (``zoom.chat.channels``);
# the others' groups are attributes of the client itself (``zoom.webinars``).
NAMESPACES = {"chat": "Chat", "phone": "Phone", "marketplace": "Marketplace"}
METHODS = ("get", "post", "put", "patch", "delete")

# Zoom's tag -> the group's attribute name, where snake_case of the tag is not it.
GROUP_NAMES = {
    "Cloud Recording": "recordings",
    "Zoom Rooms": "rooms",
    "Zoom Rooms Account": "rooms",
    "Zoom Rooms Calendar": "rooms",
    "Zoom Rooms Devices": "rooms",
    "Zoom Rooms Location": "rooms",
    "Deprecated API Endpoints": "meetings",
    "SIP Phone": "sip_phones",
    "Tracking Field": "tracking_fields",
    "Survey Management": "surveys",
    "Chat Channels (Account-level)": "account_channels",
    "Chat Channel Mention Group": "mention_groups",
    "Chat Reminder": "reminders",
    "IM Chat": "im_chat",
    "App": "apps",
    "Apps": "apps",
    "Manifest": "manifests",
    "IVR": "ivr",
    "SMS": "sms",
    "SMS Campaign": "sms_campaigns",
    "Dashboard": "dashboards",
}
# Path segments that name the group itself (dropped from method names).
GROUP_NOUNS = {
    "recordings": {"recordings", "meetings"},
    "reports": {"report"},
    "dashboards": {"metrics"},
    "rooms": {"rooms"},
    "sip_phones": {"sip_phones"},
    "im_groups": {"im", "groups"},
    "contact_groups": {"contacts", "groups"},
    "im_chat": {"im", "chat"},
    "apps": {"apps", "app"},
    "manifests": {"apps", "manifest"},
    "account_channels": {"channels"},
    "channels": {"channels"},
    "messages": {"messages"},
    "files": {"files"},
    "emoji": {"emoji"},
    "sessions": {"sessions"},
    "reminders": {"reminder", "reminders"},
    "mention_groups": {"mention_group"},
    "call_logs": {"call_logs", "call_history"},
    "voicemails": {"voice_mails", "voicemails"},
    "sms": {"sms"},
}
# Names the rules below cannot give (two operations would share one).
NAMES = {
    ("DELETE", "/marketplace/app/event_subscription"): "unsubscribe_event_subscription",
    ("GET", "/metrics/client/feedback/{feedbackId}"): "list_client_feedback_details",
    ("PATCH", "/rooms/{id}/events"): "update_room_events",
    ("GET", "/users/{userId}/tsp"): "get_user_accounts",
    ("GET", "/users/{userId}/tsp/{tspId}"): "get_user_account",
    ("DELETE", "/meetings/{meetingId}/recordings/{recordingId}"): "delete_file",
    ("PUT", "/meetings/{meetingId}/recordings/{recordingId}/status"): "set_file_status",
}
PRODUCT_ROOTS = {"chat": {"chat"}, "phone": {"phone"}, "marketplace": {"marketplace"}}
OWNERS = {"users", "accounts"}
VERBS = {"GET": "get", "POST": "create", "PATCH": "update", "PUT": "set", "DELETE": "delete"}
# Path parameters that may hold a meeting or webinar UUID (double-encoded when needed).
UUID_PARAMS = re.compile(r"^(meeting|webinar)(Id|UUID|Uuid|_id|_uuid)$")

# Caps Zoom documents per user, host, registrant or endpoint (Zoom's rate-limit page,
# snapshot 2026-02): (scope, limit or per-plan limits, period in seconds, shared by).
DAY = 86_400
CAPS: dict[tuple[str, str], tuple[str, object, int, str]] = {
    ("POST", "/users/{userId}/meetings"): ("host", 100, DAY, "meeting_webinar_write"),
    ("PATCH", "/meetings/{meetingId}"): ("host", 100, DAY, "meeting_webinar_write"),
    ("POST", "/users/{userId}/webinars"): ("host", 100, DAY, "meeting_webinar_write"),
    ("PATCH", "/webinars/{webinarId}"): ("host", 100, DAY, "meeting_webinar_write"),
    ("POST", "/meetings/{meetingId}/registrants"): ("registrant", 3, DAY, "registration"),
    ("POST", "/webinars/{webinarId}/registrants"): ("registrant", 3, DAY, "registration"),
    ("PUT", "/meetings/{meetingId}/registrants/status"):
        ("registrant", 10, DAY, "registrant_status"),
    ("PUT", "/webinars/{webinarId}/registrants/status"):
        ("registrant", 10, DAY, "registrant_status"),
    ("POST", "/users"):
        ("account", (("free", 50), ("pro", 1_500), ("business", 10_000)), DAY, "user_create"),
    ("POST", "/groups"): ("account", 100, DAY, "group_create"),
    ("PUT", "/users/{userId}/presence_status"): ("user", 1, 60, "presence_status"),
}
# Hosts other than the API's own that an operation is sent to.
HOSTS = {
    ("POST", "/chat/users/{userId}/files"): "https://file.zoom.us/v2",
    ("POST", "/chat/users/{userId}/messages/files"): "https://file.zoom.us/v2",
}
MAX_NESTING = 1
# What the fake Zoom (zoom_s2s.testing) answers from the specs: the common operations.
FAKE_OPERATIONS = (
    ("PATCH", "/users/{userId}"),
    ("GET", "/users/{userId}/settings"),
    ("PUT", "/users/{userId}/status"),
    ("GET", "/users/{userId}/meetings"),
    ("POST", "/users/{userId}/meetings"),
    ("GET", "/meetings/{meetingId}"),
    ("PATCH", "/meetings/{meetingId}"),
    ("DELETE", "/meetings/{meetingId}"),
    ("GET", "/meetings/{meetingId}/registrants"),
    ("POST", "/meetings/{meetingId}/registrants"),
    ("GET", "/past_meetings/{meetingId}/participants"),
    ("GET", "/users/{userId}/webinars"),
    ("POST", "/users/{userId}/webinars"),
    ("GET", "/webinars/{webinarId}"),
    ("PATCH", "/webinars/{webinarId}"),
    ("DELETE", "/webinars/{webinarId}"),
    ("GET", "/users/{userId}/recordings"),
    ("GET", "/meetings/{meetingId}/recordings"),
    ("DELETE", "/meetings/{meetingId}/recordings"),
    ("GET", "/report/daily"),
    ("GET", "/report/users/{userId}/meetings"),
    ("POST", "/chat/users/{userId}/files"),
)  # object levels below a response or body that get their own TypedDict

_LABEL = re.compile(r"Rate Limit Label[^`]*`([^`]+)`")
_CATEGORIES = {
    "light": "light",
    "medium": "medium",
    "heavy": "heavy",
    "resource-intensive": "resource_intensive",
}


# -- reading the specs --------------------------------------------------------------------


@dataclass
class Param:
    name: str  # Zoom's
    py: str  # the argument's
    where: str  # path | query
    required: bool
    annotation: str


@dataclass
class Op:
    method: str
    path: str
    product: str
    spec: str
    operation_id: str
    summary: str
    tag: str
    category: str | None
    page_size_max: int | None
    params: list[Param]
    body: dict[str, Any] | None
    body_required: bool
    multipart: bool
    response: dict[str, Any] | None
    group: str = ""
    name: str = ""
    list_key: str | None = None


def category_from(description: str) -> str | None:
    """The category an operation's description names ("Rate Limit Label: `X`"), if any."""
    found = _LABEL.search(description or "")
    return None if found is None else _CATEGORIES[found.group(1).strip().lower()]


def load_specs(directory: Path = SPECS) -> dict[str, dict[str, Any]]:
    return {name: json.loads((directory / f"{name}.json").read_text()) for name, _ in SOURCES}


def _json_content(part: dict[str, Any] | None) -> dict[str, Any] | None:
    content = (part or {}).get("content") or {}
    return content.get("application/json")


def operations(specs: dict[str, dict[str, Any]]) -> list[Op]:
    """Every operation once, from the newest spec that describes it, in path order."""
    found: dict[tuple[str, str], Op] = {}
    for spec_name, product in SOURCES:
        spec = specs[spec_name]
        for path, item in spec["paths"].items():
            for method in METHODS:
                if method not in item or (method.upper(), path) in found:
                    continue
                raw = item[method]
                found[(method.upper(), path)] = _op(spec_name, product, path, method, raw, item)
    return [found[key] for key in sorted(found, key=lambda k: (k[1], METHODS.index(k[0].lower())))]


def _op(spec: str, product: str, path: str, method: str, raw: dict[str, Any],
        item: dict[str, Any]) -> Op:
    params: list[Param] = []
    page_size_max = None
    paginated = False
    for prm in [*item.get("parameters", []), *raw.get("parameters", [])]:
        name, where = prm["name"], prm["in"]
        if where not in ("path", "query"):
            continue
        schema = prm.get("schema") or {}
        if where == "query" and name == "page_size":
            paginated = True
            page_size_max = _page_size_max(schema, prm.get("description", ""))
            continue
        if where == "query" and name in ("next_page_token", "page_number"):
            paginated = paginated or name == "next_page_token"
            continue
        annotation = _scalar(schema, where)
        if where == "path" and UUID_PARAMS.match(name):
            annotation = "int | str"  # a meeting or webinar id, or an instance's UUID
        params.append(Param(
            name=name, py=_py_name(name), where=where,
            required=where == "path" or bool(prm.get("required")),
            annotation=annotation
        ))
    named = re.findall(r"\{([^}]+)\}", path)
    params = [p for p in params if p.where != "path" or p.name in named]
    declared = {p.name for p in params if p.where == "path"}
    for name in named:
        if name not in declared:  # a few operations leave a path parameter undeclared
            params.append(Param(name=name, py=_py_name(name), where="path", required=True,
                                annotation="str"))
    body = body_required = None
    multipart = False
    request = raw.get("requestBody")
    if request:
        content = request.get("content") or {}
        if "application/json" in content:
            body = content["application/json"].get("schema") or {}
        elif "multipart/form-data" in content:
            multipart = True
            body = content["multipart/form-data"].get("schema") or {}
        body_required = bool(request.get("required"))
    response = None
    for status in ("200", "201", "202", "204"):
        answer = raw.get("responses", {}).get(status)
        if answer is None:
            continue
        media = _json_content(answer)
        if media is not None and media.get("schema"):
            response = media["schema"]
        break
    tag = (raw.get("tags") or ["Other"])[0]
    op = Op(
        method=method.upper(), path=path, product=product, spec=spec,
        operation_id=raw.get("operationId", ""), summary=_first_line(raw.get("summary", "")),
        tag=tag, category=category_from(raw.get("description", "")),
        page_size_max=page_size_max if paginated else None, params=params, body=body,
        body_required=bool(body_required), multipart=multipart, response=response,
    )
    if paginated and response is not None:
        op.list_key = _list_key(response)
        if op.list_key is None:
            op.page_size_max = page_size_max
    if paginated and op.page_size_max is None and method == "get":
        op.page_size_max = 300  # Zoom's usual maximum where the spec states none
    return op


def _page_size_max(schema: dict[str, Any], description: str) -> int | None:
    if isinstance(schema.get("maximum"), int):
        return int(schema["maximum"])
    found = re.search(r"(?:max(?:imum)?(?: value)?(?: of| is)?|up to)\s*:?\s*\**`?(\d+)",
                      description, re.I)
    return int(found.group(1)) if found else None


def _list_key(response: dict[str, Any]) -> str | None:
    props = _properties(response)
    arrays = [name for name, schema in props.items() if schema.get("type") == "array"]
    return arrays[0] if len(arrays) == 1 else None


def _properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An object schema's properties, those of allOf/oneOf/anyOf parts merged."""
    props: dict[str, dict[str, Any]] = {}
    for part in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(part) or []:
            for name, value in _properties(sub).items():
                props.setdefault(name, value)
    props.update(schema.get("properties") or {})
    return props


def _first_line(text: str) -> str:
    text = re.sub(r"\s+", " ", re.split(r"\n\s*\n", (text or "").strip())[0]).strip()
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    return text.replace("*", "").replace("\\", "").replace("`", "``").replace("````", "``")


def _snake(name: str) -> str:
    name = re.sub(r"[^0-9A-Za-z]+", "_", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.strip("_").lower()


_TAKEN = {"self", "body", "files", "page_size", "answer", "query", "seg", "uuid"}


def _py_name(name: str) -> str:
    py = _snake(name) or "value"
    if py[0].isdigit():
        py = "n" + py
    return py + "_" if keyword.iskeyword(py) or py in _TAKEN else py


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in _snake(name).split("_"))


def _scalar(schema: dict[str, Any], where: str) -> str:
    kind = schema.get("type")
    if kind == "integer":
        return "int | str" if where == "path" else "int"
    if kind == "number":
        return "float"
    if kind == "boolean":
        return "bool"
    if kind == "array":
        return "Sequence[str]"
    return "str"


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# -- naming -------------------------------------------------------------------------------


def group_of(op: Op) -> str:
    return GROUP_NAMES.get(op.tag) or _snake(op.tag.removeprefix("Chat "))


def _words(op: Op, group: str, keep_owner: bool) -> list[str]:
    segments = op.path.strip("/").split("/")
    if segments and segments[0] in PRODUCT_ROOTS.get(op.product, set()):
        segments = segments[1:]
    if (not keep_owner and len(segments) > 2 and segments[0] in OWNERS
            and segments[1].startswith("{")):
        segments = segments[2:]
    words: list[str] = []
    for index, segment in enumerate(segments):
        if segment.startswith("{"):
            continue
        following = segments[index + 1] if index + 1 < len(segments) else ""
        word = _snake(segment)
        if following.startswith("{"):
            word = _singular(word)
        words.append(word)
    nouns = GROUP_NOUNS.get(group, {group})
    nouns = nouns | {_singular(noun) for noun in nouns}
    while words and _singular(words[0]) in nouns:
        words = words[1:]
    return words


def _name(op: Op, group: str, keep_owner: bool = False) -> str:
    words = _words(op, group, keep_owner)
    verb = VERBS[op.method]
    if op.method == "GET" and op.list_key is not None:
        verb = "list"
    elif op.method == "GET" and not words and "{" not in op.path:
        verb = "get_all"  # a collection Zoom sends in one answer
    if op.method == "POST" and words and not op.path.endswith("}"):
        words[-1] = _singular(words[-1])
    return "_".join([verb, *words])


def assign_names(ops: list[Op]) -> None:
    by_group: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        op.group = group_of(op)
        by_group[(NAMESPACES.get(op.product, "") + "." + op.group)].append(op)
    for members in by_group.values():
        for op in members:
            op.name = NAMES.get((op.method, op.path)) or _name(op, op.group)
        counts = Counter(op.name for op in members)
        for op in members:
            if counts[op.name] > 1 and (op.method, op.path) not in NAMES:
                op.name = _name(op, op.group, keep_owner=True)
        counts = Counter(op.name for op in members)
        clashes = [f"{op.method} {op.path}" for op in members if counts[op.name] > 1]
        if clashes:
            raise SystemExit(f"two operations get one name; add them to NAMES: {clashes}")


# -- types --------------------------------------------------------------------------------


class Types:
    """TypedDicts of one module, named once each."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: set[str] = set()

    def annotation(self, schema: dict[str, Any], name: str, depth: int) -> str:
        kind = schema.get("type")
        props = _properties(schema)
        if kind == "array":
            items = schema.get("items") or {}
            return f"list[{self.annotation(items, name + 'Item', depth)}]"
        if kind == "object" or props:
            if not props or depth > MAX_NESTING:
                return "JSONObject"
            return self.typed_dict(name, props, depth)
        if kind == "integer":
            return "int"
        if kind == "number":
            return "float"
        if kind == "boolean":
            return "bool"
        if kind == "string":
            return "str"
        return "object"

    def typed_dict(self, name: str, props: dict[str, dict[str, Any]], depth: int) -> str:
        base, count = name, 2
        while name in self.names:
            name, count = f"{base}{count}", count + 1
        self.names.add(name)
        fields = [
            (key, self.annotation(value, name + _pascal(key), depth + 1))
            for key, value in props.items()
        ]
        body = ", ".join(f"{_s(key)}: {annotation}" for key, annotation in fields)
        line = f"{name} = TypedDict({_s(name)}, {{{body}}}, total=False)"
        if len(line) <= 100:
            self.lines.append(line)
        else:
            self.lines.append(f"{name} = TypedDict({_s(name)}, {{")
            self.lines.extend(_packed("    ", [f"{_s(k)}: {a}," for k, a in fields]))
            self.lines.append("}, total=False)")
        return name


# -- writing ------------------------------------------------------------------------------

HEADER = ('"""{doc}\n\nGenerated by ``tools/generate_api.py`` from ``specs/zoom/``: '
          'do not edit.\n"""\n')


def _py(value: object) -> str:
    """A Python literal, strings double-quoted."""
    if isinstance(value, str):
        return _s(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_py(item) for item in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def operations_module(ops: list[Op]) -> str:
    rows = []
    for op in ops:
        rows.append(
            "    " + _py((op.method, op.path, op.product, op.operation_id, op.category,
                          op.page_size_max)) + ","
        )
    caps = []
    for (method, path), (scope, limit, period, shared) in sorted(CAPS.items()):
        assert any(op.method == method and op.path == path for op in ops), (method, path)
        caps.append(f"    {_py((method, path))}: {_py((scope, limit, period, shared))},")
    hosts = [f"    {_py(key)}: {_s(host)}," for key, host in sorted(HOSTS.items())]
    return "\n".join([
        HEADER.format(doc="Every operation of Zoom's REST API: its category, page-size maximum "
                          "and caps.\n\nRead through :mod:`zoom_s2s.ratelimit.operations`."),
        "from __future__ import annotations",
        "",
        "from typing import TYPE_CHECKING",
        "",
        "if TYPE_CHECKING:",
        "    from .limits import Category",
        "",
        "# (method, path template below /v2, product, operationId, category, page_size max)",
        "OPERATIONS: tuple[tuple[str, str, str, str, Category | None, int | None], ...] = (",
        *rows,
        ")",
        "",
        "# (method, path template): (scope, limit or ((plan, limit), ...), period s, shared by)",
        "CAPS: dict[tuple[str, str], tuple[str, int | tuple[tuple[str, int], ...], int, str]] = {",
        *caps,
        "}",
        "",
        "# (method, path template): the base URL it is sent to instead of the API's",
        "HOSTS: dict[tuple[str, str], str] = {",
        *hosts,
        "}",
        "",
    ])


def _path_expr(op: Op) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        param = next(p for p in op.params if p.where == "path" and p.name == name)
        helper = "uuid" if UUID_PARAMS.match(name) else "seg"
        return "{" + f"{helper}({param.py})" + "}"

    path = re.sub(r"\{([^}]+)\}", replace, op.path)
    return f'f"{path}"' if "{" in path else _s(path)


def _signature(op: Op, types: Types, cls: str, sync: bool) -> tuple[str, list[str], list[str]]:
    """(return annotation, argument declarations, the caller's method and its arguments)."""
    stem = cls + _pascal(op.name)
    path_params = [p for p in op.params if p.where == "path"]
    ordered = sorted(path_params, key=lambda p: op.path.index("{" + p.name + "}"))
    args = [f"{p.py}: {p.annotation}" for p in ordered]
    body_arg = None
    if op.multipart:
        args.append("files: Mapping[str, Upload]")
        body_arg = "files"
    elif op.body is not None:
        annotation = types.annotation(op.body, stem + "Body", 0)
        if op.body_required:
            args.append(f"body: {annotation}")
        else:
            args.append(f"body: {annotation} | None = None")
        body_arg = "body"
    query = [p for p in op.params if p.where == "query"]
    for p in query:
        if p.py in {q.py for q in path_params}:
            p.py = "query_" + p.py  # a query parameter named like a path parameter
    keyword_args = []
    for p in sorted(query, key=lambda p: not p.required):
        if p.required:
            keyword_args.append(f"{p.py}: {p.annotation}")
        else:
            keyword_args.append(f"{p.py}: {p.annotation} | None = None")
    if op.list_key is not None:
        keyword_args.append("page_size: int | None = None")
    if keyword_args:
        args.append("*")
        args.extend(keyword_args)
    params = "None"
    if query:
        params = "query(" + ", ".join(
            f"{p.name}={p.py}" if p.name.isidentifier() and not keyword.iskeyword(p.name)
            else f"**{{{_s(p.name)}: {p.py}}}" for p in query) + ")"
    path = _path_expr(op)
    category = "None" if op.category is None else _s(op.category)
    if op.list_key is not None:
        item_schema = (_properties(op.response or {}).get(op.list_key) or {}).get("items") or {}
        item = types.annotation(item_schema, stem + "Item", 0)
        returns = f"{'Iterator' if sync else 'AsyncIterator'}[{item}]"
        call = ["paginate", path, f"params={params}", f"key={_s(op.list_key)}",
                f"page_size=page_size or {op.page_size_max}"]
        call = [arg for arg in call if arg != "params=None"]
        return returns, args, call
    if op.response is not None and op.method != "DELETE":
        returns = types.annotation(op.response, stem + "Response", 0)
    else:
        returns = "None"
    if op.multipart:
        host = HOSTS.get((op.method, op.path))
        call = ["upload", _s(op.method), path, "files=files", f"params={params}",
                f"base_url={'None' if host is None else _s(host)}", f"rate_category={category}"]
    else:
        call = ["request", _s(op.method), path, f"params={params}", f"json={body_arg}",
                f"rate_category={category}"]
    call = [arg for arg in call if not arg.endswith("=None")]
    return returns, args, call


def _s(text: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def _packed(indent: str, items: list[str]) -> list[str]:
    """``items`` as few to a line as fit in 100 columns."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 1 + len(item) <= 100:
            lines[-1] += " " + item
        else:
            lines.append(indent + item)
    return lines


def _call_lines(indent: str, lead: str, call: list[str]) -> list[str]:
    """``lead + self._caller.<name>(args)``, one argument a line when it is too long."""
    head = f"{lead}self._caller.{call[0]}("
    one = indent + head + ", ".join(call[1:]) + ")"
    if len(one) <= 100:
        return [one]
    packed = f"{indent}    " + ", ".join(call[1:])
    if len(packed) <= 100:
        return [indent + head, packed, indent + ")"]
    lines = [indent + head]
    for arg in call[1:]:
        line = f"{indent}    {arg},"
        if len(line) > 100 and "query(" in arg:
            name, _, inner = arg.partition("query(")
            lines.append(f"{indent}    {name}query(")
            lines.extend(f"{indent}        {part}," for part in _split_args(inner[:-1]))
            lines.append(f"{indent}    ),")
        else:
            lines.append(line)
    lines.append(indent + ")")
    return lines


def _doc(op: Op) -> str:
    what = op.category.replace("_", "-").capitalize() if op.category else "no rate-limit label"
    extra = f", pages of up to {op.page_size_max}" if op.list_key is not None else ""
    return f"{op.summary.rstrip('.')}: ``{op.method}\xa0{op.path}`` ({what}{extra})."


def _docstring(text: str) -> list[str]:
    lines = textwrap.wrap(text, 88, break_long_words=False, break_on_hyphens=False)
    lines = [line.replace("\xa0", " ") for line in lines]  # a method stays with its path
    if len(lines) == 1:
        return [f'        """{lines[0]}"""']
    return ['        """' + lines[0], *(f"        {line}" for line in lines[1:]), '        """']


def _wrap_def(prefix: str, name: str, args: list[str], returns: str) -> list[str]:
    one = f"    {prefix}def {name}(self{''.join(', ' + a for a in args)}) -> {returns}:"
    if len(one) <= 100:
        return [one]
    lines = [f"    {prefix}def {name}("]
    lines.append("        self,")
    lines.extend(f"        {arg}," for arg in args)
    lines.append(f"    ) -> {returns}:")
    return lines


def _split_args(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    quote: str | None = None
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = None
            continue
        if char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def _class_name(group: str) -> str:
    return _pascal(group)


def product_module(product: str, groups: dict[str, list[Op]]) -> str:
    types = Types()
    classes: list[str] = []
    namespace = NAMESPACES.get(product)
    for group, members in groups.items():
        cls = (namespace or "") + _class_name(group)
        for sync in (False, True):
            name = ("Sync" if sync else "") + cls
            caller = "SyncCaller" if sync else "Caller"
            title = group.replace("_", " ")
            classes += ["", "", f"class {name}:",
                        f'    """{"Blocking: " if sync else ""}Zoom\'s {title} API'
                        f' (``{(namespace or "").lower() + "." if namespace else ""}{group}``).'
                        '"""', "",
                        '    __slots__ = ("_caller",)', "",
                        f"    def __init__(self, caller: {caller}) -> None:",
                        "        self._caller = caller"]
            for op in members:
                returns, args, call = _signature(op, types, cls, sync)
                paged = op.list_key is not None
                prefix = "" if sync or paged else "async "
                wait = "" if sync else "await "
                classes.append("")
                classes.extend(_wrap_def(prefix, op.name, args, returns))
                classes.extend(_docstring(_doc(op)))
                if paged:
                    classes.extend(_call_lines("        ", "return ", call))
                elif returns == "None":
                    classes.extend(_call_lines("        ", wait, call))
                else:
                    classes.extend(_call_lines("        ", f"answer: {returns} = {wait}", call))
                    classes.append("        return answer")
    if namespace:
        for sync in (False, True):
            name = ("Sync" if sync else "") + namespace
            caller = "SyncCaller" if sync else "Caller"
            classes += ["", "", f"class {name}:",
                        f'    """{"Blocking: " if sync else ""}Zoom {namespace}: one attribute '
                        'per group of operations."""', "",
                        '    __slots__ = ("_caller",)', "",
                        f"    def __init__(self, caller: {caller}) -> None:",
                        "        self._caller = caller"]
            for group in groups:
                cls = ("Sync" if sync else "") + namespace + _class_name(group)
                classes += ["", "    @property", f"    def {group}(self) -> {cls}:",
                            f"        return {cls}(self._caller)"]
    used = "\n".join(types.lines + classes)
    typing_names = ["TypedDict"]
    abc = [n for n in ("AsyncIterator", "Iterator", "Mapping", "Sequence")
           if re.search(rf"\b{n}\[", used)]
    base = [n for n in ("Caller", "JSONObject", "SyncCaller", "Upload", "query", "seg", "uuid")
            if re.search(rf"\b{n}\b", used)]
    titles = {"meetings": "Meetings, webinars, recordings, reports, rooms",
             "users": "Users, groups, contact groups, divisions",
             "accounts": "Accounts, dashboards, roles, data requests, surveys",
             "chat": "Team Chat", "phone": "Zoom Phone", "marketplace": "Marketplace apps"}
    lines = [
        HEADER.format(doc=f"{titles[product]}: Zoom's {product} API, typed. See docs/api/"
                          f"{product}.rst."),
        "from __future__ import annotations",
        "",
        *([f"from collections.abc import {', '.join(abc)}"] if abc else []),
        f"from typing import {', '.join(typing_names)}",
        "",
        f"from ._base import {', '.join(base)}",
        "",
        *types.lines,
        *classes,
        "",
    ]
    return "\n".join(lines)


def package_module(layout: dict[str, dict[str, list[Op]]]) -> str:
    top: list[tuple[str, str, str]] = []  # (attribute, module, class)
    for product, groups in layout.items():
        if product in NAMESPACES:
            top.append((product, product, NAMESPACES[product]))
        else:
            top.extend((group, product, _class_name(group)) for group in groups)
    top.sort()
    lines = [
        HEADER.format(doc="Zoom's whole REST API, typed, one module per product, loaded on first "
                          "use.\n\n``ZoomClient`` and ``SyncZoomClient`` get one attribute per "
                          "group of operations\nfrom :class:`Products` and "
                          ":class:`SyncProducts`. See docs/api/index.rst."),
        "from __future__ import annotations",
        "",
        "from functools import cached_property",
        "from typing import TYPE_CHECKING, cast",
        "",
        "from ._base import Caller, JSONObject, SyncCaller, Upload, encode_uuid",
        "",
        "if TYPE_CHECKING:",
    ]
    modules: dict[str, list[str]] = defaultdict(list)
    for _, module, cls in top:
        modules[module] += [cls, "Sync" + cls]
    for module in sorted(modules):
        names = ", ".join(sorted(modules[module]))
        line = f"    from .{module} import {names}"
        if len(line) > 100:
            lines.append(f"    from .{module} import (")
            lines.extend(f"        {n}," for n in sorted(modules[module]))
            lines.append("    )")
        else:
            lines.append(line)
    lines += ["", "__all__ = [", '    "Caller",', '    "JSONObject",', '    "Products",',
              '    "SyncCaller",', '    "SyncProducts",', '    "Upload",', '    "encode_uuid",',
              "]"]
    for sync in (False, True):
        name = "SyncProducts" if sync else "Products"
        caller = "SyncCaller" if sync else "Caller"
        lines += ["", "", f"class {name}:",
                  f'    """The API\'s operations as attributes of a {"blocking " if sync else ""}'
                  'client (mixed into it)."""', ""]
        for attribute, module, cls in top:
            cls = ("Sync" if sync else "") + cls
            lines += ["    @cached_property", f"    def {attribute}(self) -> {cls}:",
                      f"        from .{module} import {cls}", "",
                      f"        return {cls}(self._as_caller())", ""]
        lines += [f"    def _as_caller(self) -> {caller}:",
                  f"        return cast({_s(caller)}, self)", ""]
    return "\n".join(lines).rstrip() + "\n"


def doc_page(product: str, groups: dict[str, list[Op]]) -> str:
    namespace = NAMESPACES.get(product)
    title = f"{product.capitalize()} API" if product != "chat" else "Team Chat API"
    lines = [title, "=" * len(title), "",
             f"Generated by ``tools/generate_api.py`` from ``specs/zoom/``: do not edit. "
             f"Every method of ``zoom_s2s.api.{product}``, with Zoom's path, its rate-limit "
             "category and, for lists, the largest page. The blocking classes "
             "(``Sync...``) have the same methods.", ""]
    for group, members in groups.items():
        attribute = f"zoom.{product}.{group}" if namespace else f"zoom.{group}"
        lines += [f"``{attribute}``", "-" * (len(attribute) + 4), "",
                  ".. list-table::", "   :header-rows: 1", "",
                  "   * - Method", "     - Zoom", "     - Category", "     - Page"]
        for op in members:
            lines += [f"   * - ``{op.name}``", f"     - ``{op.method} {op.path}``",
                      f"     - {op.category or '-'}",
                      f"     - {op.page_size_max if op.list_key is not None else '-'}"]
        lines.append("")
    return "\n".join(lines)


def layout_of(ops: list[Op]) -> dict[str, dict[str, list[Op]]]:
    """product module -> group -> operations; a top-level group lives with its first product."""
    home: dict[str, str] = {}
    for _, product in SOURCES:
        for op in ops:
            if op.product == product and op.product not in NAMESPACES:
                home.setdefault(op.group, product)
    layout: dict[str, dict[str, list[Op]]] = {product: {} for _, product in SOURCES}
    for op in ops:
        module = op.product if op.product in NAMESPACES else home[op.group]
        layout[module].setdefault(op.group, []).append(op)
    for groups in layout.values():
        for group in list(groups):
            groups[group].sort(key=lambda op: op.name)
        ordered = dict(sorted(groups.items()))
        groups.clear()
        groups.update(ordered)
    return layout


def example_of(schema: dict[str, Any], depth: int = 0) -> object:
    """A value the schema accepts, from the examples the specs give its fields."""
    kind = schema.get("type")
    props = _properties(schema)
    if kind == "array":
        return [example_of(schema.get("items") or {}, depth + 1)] if depth < 6 else []
    if kind == "object" or props:
        return {key: example_of(value, depth + 1) for key, value in props.items()}
    example = schema.get("example", schema.get("default"))
    if example is None and schema.get("enum"):
        example = schema["enum"][0]
    types: dict[str, type | tuple[type, ...]] = {
        "integer": int, "number": (int, float), "boolean": bool, "string": str,
    }
    wanted = types.get(kind or "string", str)
    if isinstance(example, wanted) and not (kind != "boolean" and isinstance(example, bool)):
        return example
    return {"integer": 1, "number": 1.0, "boolean": True}.get(kind or "string", "string")


def fake_module(ops: list[Op]) -> str:
    by_key = {(op.method, op.path): op for op in ops}
    lines = [
        HEADER.format(doc="What the fake Zoom answers for the common operations, from the "
                          "examples in Zoom's specs.\n\nServed by "
                          ":mod:`zoom_s2s.testing._fake_api`."),
        "# (method, path template): (status, category, list key or None, page_size max, body)",
        "EXAMPLES: dict[tuple[str, str], tuple[int, str | None, str | None, int | None, object]] = "
        "{",
    ]
    for key in FAKE_OPERATIONS:
        op = by_key[key]
        body = None if op.response is None else example_of(op.response)
        status = 201 if op.method == "POST" else 200 if body is not None else 204
        lines.append(f"    {_py(key)}: ({status}, {_py(op.category)}, {_py(op.list_key)}, "
                     f"{op.page_size_max!r}, {body!r}),")
    lines += ["}", ""]
    return "\n".join(lines)


def outputs(specs: dict[str, dict[str, Any]]) -> Iterator[tuple[Path, str]]:
    ops = operations(specs)
    assign_names(ops)
    layout = layout_of(ops)
    yield ROOT / "zoom_s2s" / "ratelimit" / "_operations.py", operations_module(ops)
    yield ROOT / "zoom_s2s" / "api" / "__init__.py", package_module(layout)
    yield ROOT / "zoom_s2s" / "testing" / "_fake_examples.py", fake_module(ops)
    for product, groups in layout.items():
        yield ROOT / "zoom_s2s" / "api" / f"{product}.py", product_module(product, groups)
        yield ROOT / "docs" / "api" / f"{product}.rst", doc_page(product, groups)


# -- vendoring ----------------------------------------------------------------------------

_DROP = {"x-enum-descriptions", "x-extensions", "x-macro-scopes", "x-permissions",
         "x-granular-scopes", "security", "externalDocs", "title", "deprecated"}


def _strip(node: object, keep_description: bool = False) -> object:
    """A spec without what the generator never reads (see specs/zoom/README.rst)."""
    if isinstance(node, list):
        return [_strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "description" and not keep_description:
            continue
        if key in ("example", "examples", "default", "enum"):
            out[key] = value
            continue
        if key in ("properties", "content", "responses") and isinstance(value, dict):
            out[key] = {name: _strip(sub) for name, sub in value.items()}
        elif key == "parameters" and isinstance(value, list):
            out[key] = [_strip(prm, keep_description=True) for prm in value]
        else:
            out[key] = _strip(value)
    return out


def vendor(source: Path) -> None:
    for name, _ in SOURCES:
        spec = json.loads((source / f"{name}.json").read_text())
        paths = {}
        for path, item in spec["paths"].items():
            kept: dict[str, object] = {}
            for key, value in item.items():
                if key in METHODS:
                    op = dict(value, description=_keep_label(value.get("description", "")))
                    kept[key] = _strip(op, keep_description=True)
                elif key == "parameters":
                    kept[key] = [_strip(prm, keep_description=True) for prm in value]
            paths[path] = kept
        stripped = {"openapi": spec.get("openapi"), "info": spec.get("info"),
                    "servers": spec.get("servers"), "paths": paths}
        (SPECS / f"{name}.json").write_text(json.dumps(stripped, indent=1, ensure_ascii=False)
                                            + "\n")


def _keep_label(description: str) -> str:
    """The first paragraph of an operation's description and its rate-limit label."""
    first = re.split(r"\n\s*\n", description.strip())[0].strip() if description else ""
    label = _LABEL.search(description or "")
    return first + (f"\n\nRate Limit Label: `{label.group(1)}`" if label else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a generated file differs from what the specs give")
    parser.add_argument("--vendor", type=Path, metavar="DIR",
                        help="refresh specs/zoom/ from Zoom's original files in DIR first")
    args = parser.parse_args(argv)
    if args.vendor:
        vendor(args.vendor)
    stale = []
    for path, text in outputs(load_specs()):
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print("not current (run python tools/generate_api.py):", *stale, sep="\n  ")
        return 1
    if not args.check:
        print(f"wrote {len(stale)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
