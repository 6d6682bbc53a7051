"""Where the long-lived actors may run: ``Settings.control_resource``."""

from __future__ import annotations

import pytest

from ingest_ray.config import Settings
from ingest_ray.errors import ConfigurationError
from ingest_ray.runtime.actors import (
    CONTROL,
    CONTROL_SHARE,
    check_placement,
    control_options,
    placement,
)


def test_placement_is_any_node_unless_a_control_resource_is_set() -> None:
    assert placement(Settings()) == {}
    assert control_options(Settings()) == CONTROL


def test_placement_asks_a_sliver_of_the_control_resource() -> None:
    settings = Settings(control_resource="ingest_control")
    assert placement(settings) == {"resources": {"ingest_control": CONTROL_SHARE}}
    options = control_options(settings)
    assert options["lifetime"] == "detached"
    assert options["max_restarts"] == -1
    assert options["resources"] == {"ingest_control": CONTROL_SHARE}


def test_placement_refuses_a_control_resource_no_node_carries() -> None:
    settings = Settings(control_resource="ingest_control")
    with pytest.raises(ConfigurationError, match="no node of the Ray cluster carries"):
        check_placement(settings, {"CPU": 8.0})
    check_placement(settings, {"CPU": 8.0, "ingest_control": 1.0})
    check_placement(Settings(), {"CPU": 8.0})


def test_placement_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_RAY_CONTROL_RESOURCE", "head_only")
    assert Settings().control_resource == "head_only"
