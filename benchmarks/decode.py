"""decode: a 300-row page of meetings decoded as the typed API does, vs ``json.loads`` alone.

The generated API types answers as ``TypedDict`` (``zoom_s2s.api``): a typed
answer is the decoded JSON itself, so its cost is the client's decode step
(``decode_response``: status check, ``json.loads``). Beside it, what typed
models would cost: attrs classes built from each row (unknown fields kept in
an ``extra`` dict), and msgspec structs when msgspec is installed. Interleaved
rounds, median of per-round ratios to ``json.loads``. Target: the typed API
within 1.5x of ``json.loads``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import attrs

from zoom_s2s.client.responses import decode_response

from ._common import Figure, RunContext, compare_sync, figure

NAME = "decode"
TITLE = "typed 300-row page decode vs json.loads"
TARGET_RATIO = 1.5
ROWS = 300


@attrs.define(slots=True)
class Meeting:
    """A row of ``GET /users/{userId}/meetings`` as an attrs model (the alternative measured)."""

    id: int | None = None
    uuid: str | None = None
    host_id: str | None = None
    topic: str | None = None
    type: int | None = None
    start_time: str | None = None
    duration: int | None = None
    timezone: str | None = None
    agenda: str | None = None
    created_at: str | None = None
    join_url: str | None = None
    pmi: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)


_FIELDS = frozenset(field.name for field in attrs.fields(Meeting)) - {"extra"}


def as_attrs(body: bytes) -> list[Meeting]:
    rows = json.loads(body)["meetings"]
    meetings = []
    for row in rows:
        known = {key: value for key, value in row.items() if key in _FIELDS}
        extra = {key: value for key, value in row.items() if key not in _FIELDS}
        meetings.append(Meeting(**known, extra=extra))
    return meetings


def page() -> bytes:
    """A page of 300 meetings shaped like Zoom's example row (``specs/zoom/meetings.json``)."""
    from zoom_s2s.testing._fake_examples import EXAMPLES

    example = EXAMPLES[("GET", "/users/{userId}/meetings")][4]
    assert isinstance(example, dict)
    row = example["meetings"][0]
    rows = []
    for index in range(ROWS):
        item = copy.deepcopy(row)
        item.update(id=81234567890 + index, topic=f"Weekly sync {index}",
                    uuid=f"aDYlohsHRtCd4ii1uC{index:04d}==")
        rows.append(item)
    answer = {"page_size": ROWS, "total_records": ROWS, "next_page_token": "", "meetings": rows}
    return json.dumps(answer).encode()


def run(ctx: RunContext) -> list[Figure]:
    body = page()
    headers = {"Content-Type": "application/json"}
    subjects = {
        "json.loads": lambda: json.loads(body),
        "typed API (TypedDict)": lambda: decode_response(
            200, headers, body, method="GET", path="/v2/users/me/meetings"
        ),
        "attrs models": lambda: as_attrs(body),
    }
    try:
        import msgspec  # type: ignore[import-not-found]
    except ImportError:
        msgspec = None
    if msgspec is not None:
        struct = msgspec.defstruct("Meeting", [(name, Any, None) for name in sorted(_FIELDS)])
        decoder = msgspec.json.Decoder(dict[str, list[struct] | Any])  # type: ignore[valid-type]
        subjects["msgspec structs"] = lambda: decoder.decode(body)
    measured = compare_sync(subjects, calls=ctx.size(50, 200), rounds=ctx.size(7, 15))
    ctx.data[NAME] = {"rows": ROWS, "bytes": len(body), **measured.summary()}
    loads_us = measured.median("json.loads") / 1000
    figures = [
        figure(NAME, "typed API / json.loads, 300-row page",
               measured.ratio("typed API (TypedDict)", "json.loads"), "x",
               at_most=TARGET_RATIO, note=f"json.loads {loads_us:.0f} us, {len(body)} bytes"),
        figure(NAME, "attrs models / json.loads, 300-row page",
               measured.ratio("attrs models", "json.loads"), "x",
               note="unknown fields kept in an extra dict"),
    ]
    if msgspec is None:
        figures.append(figure(NAME, "msgspec structs / json.loads", None,
                              note="msgspec is not installed: skipped"))
    else:
        figures.append(figure(NAME, "msgspec structs / json.loads",
                              measured.ratio("msgspec structs", "json.loads"), "x"))
    return figures
