"""The broker benchmark's short form: a throw-away broker per setting, on ports of its own."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import kafka_broker


def test_broker_benchmark_measures_each_setting_on_a_broker_of_its_own(tmp_path: Path) -> None:
    out = tmp_path / "broker.json"
    kafka_broker.main(["--settings", "c2,c1", "--rate", "0", "--messages", "200",
                       "--rounds", "1", "--json", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    assert [r["setting"] for r in report["runs"]] == ["c2", "c1"]
    c2, c1 = report["runs"]
    assert "-XX:TieredStopAtLevel=1" in c1["jvm_flags"] and c2["jvm_flags"] == ["-XX:+UseG1GC"]
    for run in report["runs"]:
        assert run["start_cpu_s"] > 0 and run["total_cpu_s"] >= run["start_cpu_s"]
        (only,) = run["rounds"]
        assert only["broker_cpu_s"] >= 0 and only["wall_s"] > 0
