"""The HTML cards results show as in a notebook: what a user reads, escaped, links only to web URLs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.cards import card
from workbench.monitor import VersionComparison
from workbench.packaging import ImageRecord


def test_a_card_escapes_every_value_and_links_only_web_urls() -> None:
    html = card("Deployment", "<b>x</b>", badges=[("<i>", "bad")],
                rows=[("URL", "http://127.0.0.1:8080"), ("note", "javascript:alert(1)"), ("empty", "")])
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;i&gt;" in html and "<b>" not in html
    assert "<a href='http://127.0.0.1:8080'" in html
    assert "href='javascript" not in html and "javascript:alert(1)" in html
    assert "empty" not in html  # rows without a value are left out


def test_an_image_shows_its_tag_model_size_and_cache_use() -> None:
    image = ImageRecord(tag="workbench/churn:3", image_id="sha256:0123456789abcdef0123", size_bytes=312_000_000,
                        labels={}, model_uri="models:/churn/3", model_name="churn", model_version="3",
                        base_image="python:3.11-slim", context_dir=Path("/tmp/ctx"), build_seconds=4.24,
                        total_steps=9, cached_instructions=("FROM", "RUN pip install"))
    html = image._repr_html_()
    for shown in ("workbench/churn:3", "churn v3 (models:/churn/3)", "312 MB", "python:3.11-slim",
                  "in 4.2 s, 2 of 9 steps from the cache"):
        assert shown in html


def test_a_champion_challenger_comparison_shows_traffic_and_the_table() -> None:
    table = pd.DataFrame({"champion v1": {"requests logged": 80, "error rate": 0.0},
                          "challenger v2": {"requests logged": 20, "error rate": 0.05}})
    html = VersionComparison("credit", table, {"mode": "split", "challenger_share": 0.2})._repr_html_()
    assert "credit" in html and "20% of requests" in html
    assert "champion v1" in html and "challenger v2" in html and "0.05" in html
    shadow = VersionComparison("credit", table, {"mode": "shadow", "challenger_share": 0.2})._repr_html_()
    assert "shadow: sees every request, answers none" in shadow
