"""Driving the widgets as a user would, without a browser: find a control by its label, press it,
read what the panes show."""

from __future__ import annotations

from typing import Any

import panel as pn


def control(component: Any, kind: type, label: str) -> Any:
    """The widget of type ``kind`` labelled ``label`` in a component's layout (what a user sees)."""
    found = [w for w in component.__panel__().select(kind) if getattr(w, "label", None) == label]
    assert found, f"no {kind.__name__} labelled {label!r}"
    return found[0]


def press(component: Any, label: str) -> None:
    """Click the button labelled ``label``."""
    button = control(component, pn.widgets.Button, label)
    assert not button.disabled, f"the {label!r} button is disabled"
    button.clicks += 1


def shown_text(component: Any) -> str:
    """Everything the component shows as text (Markdown, HTML, Str and Alert panes), joined."""
    parts = []
    for pane in component.__panel__().select(lambda o: isinstance(o, (pn.pane.Markdown, pn.pane.HTML, pn.pane.Str))):
        if pane.visible and isinstance(pane.object, str):
            parts.append(pane.object)
    return "\n".join(parts)


def errors_shown(component: Any) -> list[str]:
    """The error boxes the component shows."""
    return [a.object for a in component.__panel__().select(pn.pane.Alert) if a.visible and a.object]
