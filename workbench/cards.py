"""Compact HTML cards: how the core's results show in a notebook cell, the way a DataFrame does.

A card is a plain HTML string (no UI library): a title, a few badges (aliases, state, health) and
rows of label and value. Every value is escaped; links are made only from ``http(s)`` URLs.

Example::

    from workbench.cards import card
    card("Deployment", "churn", badges=[("healthy", "good")], rows=[("URL", "http://127.0.0.1:8080")])
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Literal

__all__ = ["Tone", "card"]

#: How a badge is coloured: good (green), bad (red), warn (amber), plain (grey).
Tone = Literal["good", "bad", "warn", "plain"]

_TONES: dict[str, tuple[str, str]] = {
    "good": ("#e6f4ea", "#1e6b34"),
    "bad": ("#fce8e6", "#a50e0e"),
    "warn": ("#fef7e0", "#8a5a00"),
    "plain": ("#eef0f3", "#3c4043"),
}
_URL = re.compile(r"^https?://[^\s\"'<>]+$")


def _badge(text: str, tone: Tone) -> str:
    background, colour = _TONES[tone]
    return (f"<span style='background:{background};color:{colour};border-radius:8px;padding:1px 7px;"
            f"margin-left:4px;font-size:0.85em'>{html.escape(text)}</span>")


def _value(value: object) -> str:
    text = "" if value is None else str(value)
    if _URL.match(text):
        escaped = html.escape(text)
        return f"<a href='{escaped}' target='_blank' rel='noopener'>{escaped}</a>"
    return html.escape(text)


def card(
    kind: str,
    title: str,
    *,
    badges: Iterable[tuple[str, Tone]] = (),
    rows: Sequence[tuple[str, object]] = (),
    table: str = "",
) -> str:
    """An HTML card: ``kind`` (small caps, e.g. ``Deployment``), a ``title``, ``badges`` as (text,
    tone), ``rows`` of (label, value) with empty values left out, and an optional ``table`` that is
    already HTML (a DataFrame's ``to_html``, which escapes its own cells)."""
    head = "".join(_badge(text, tone) for text, tone in badges)
    body = "".join(
        f"<tr><th style='text-align:left;padding:1px 12px 1px 0;font-weight:500;color:#5f6368'>"
        f"{html.escape(label)}</th><td style='text-align:left;padding:1px 0'>{_value(value)}</td></tr>"
        for label, value in rows if value not in (None, "", ())
    )
    return (
        "<div class='workbench-card' style='border:1px solid #dadce0;border-radius:6px;padding:8px 12px;"
        "display:inline-block;min-width:22em;font-family:inherit'>"
        f"<div style='font-size:0.75em;letter-spacing:0.06em;text-transform:uppercase;color:#5f6368'>"
        f"{html.escape(kind)}</div>"
        f"<div style='font-weight:600;margin:2px 0 6px'>{html.escape(title)}{head}</div>"
        f"<table style='border-collapse:collapse;font-size:0.9em'>{body}</table>{table}</div>"
    )
