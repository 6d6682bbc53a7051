"""What ``ingest-ray up`` prints: where everything answers and the key (no services)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from ingest_ray.commands.local_service import Addresses
from ingest_ray.commands.up import panel
from ingest_ray.local_key import LocalKey


class _Service:
    def __init__(self) -> None:
        self.addresses = Addresses(
            api="http://127.0.0.1:8000/", ray_dashboard="http://127.0.0.1:8265",
            metrics="http://127.0.0.1:9464/metrics", kafka="127.0.0.1:9092",
            redis="redis://127.0.0.1:6379/0", started=["kafka"],
        )  # fmt: skip
        self.key = LocalKey("k1", "irk_secret", "default", Path("/state/up/api-key.json"), False)
        self.workers: list[Any] = []


def test_up_panel_prints_urls_key_and_what_it_started() -> None:
    console = Console(width=140, record=True, color_system=None)
    console.print(panel(_Service(), live=False))  # type: ignore[arg-type]
    text = console.export_text()
    assert "http://127.0.0.1:8000/#key=irk_secret" in text  # the dashboard link carries the key
    assert "http://127.0.0.1:8265" in text and "http://127.0.0.1:9464/metrics" in text
    assert "irk_secret  (tenant default; saved in /state/up/api-key.json)" in text
    assert "127.0.0.1:9092  (started here)" in text
    assert "redis://127.0.0.1:6379/0  (already running)" in text
