"""The local Kafka broker's CPU under JVM settings, side by side in one invocation.

    python -m benchmarks.kafka_broker --rate 200 --messages 3000 --rounds 3 \
        --json benchmarks/results/kafka_broker.json

For each setting (``--settings``, default ``c2,c1``): a throw-away KRaft broker from the stack's
jars, the stack's ``server.properties`` and that setting's JVM flags, on its own ports and state
directory; the CPU it takes to start and how long until it answers; then ``--rounds`` rounds of
``--messages`` requests produced at ``--rate`` per second (idempotent, ``acks=all``, ``linger.ms``
``--linger-ms``: the orchestration benchmark's producer sends each at once) and read as the
ingress reads them (``poll_batch``). The broker's CPU per round and per message is read from
``/proc``. ``c2`` is the JVM's default (tiered compilation up to C2); ``c1`` stops at C1, the
stack's default (:class:`~ingest_ray.stack.services.KafkaService`). With ``--repeat`` above 1 the
settings take turns (a fresh broker each time), so a drifting host hits both alike.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer as _Producer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from benchmarks.common import machine_info, paced
from benchmarks.cpu import process_cpu_s
from ingest_ray.config import Settings
from ingest_ray.kafka.admin import LIBRDKAFKA_LOG, admin_client
from ingest_ray.kafka.consumer import Consumer
from ingest_ray.ports import free_ports
from ingest_ray.stack.process import ManagedProcess
from ingest_ray.stack.services import KafkaService

SETTINGS: dict[str, tuple[str, ...]] = {
    "c2": ("-XX:+UseG1GC",),
    "c1": KafkaService.jvm_flags,
}


def _cpu(pid: int) -> float:
    cpu = process_cpu_s(pid)
    if cpu is None:
        raise RuntimeError(f"the broker (pid {pid}) exited")
    return cpu


def _round(
    address: str, pid: int, rate: float, messages: int, linger_ms: float
) -> dict[str, float]:
    """One topic, a reader like the ingress, ``messages`` paced requests; the broker's CPU."""
    topic = f"broker-bench-{uuid.uuid4().hex[:8]}"
    admin = admin_client(address)
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    consumer = Consumer(address, topic, [topic])
    read = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal read
        while not stop.is_set():
            read += len(consumer.poll_batch(500, timeout=0.2))

    deadline = time.monotonic() + 30  # joined before the clock starts (poll drives the join)
    while not consumer.assigned() and time.monotonic() < deadline:
        read += len(consumer.poll_batch(500, timeout=0.2))
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    config: dict[str, Any] = {
        "bootstrap.servers": address, "enable.idempotence": True, "acks": "all",
        "linger.ms": linger_ms, "logger": LIBRDKAFKA_LOG,
    }  # fmt: skip
    producer = _Producer(config)
    producer.produce(topic, b"warm")
    producer.flush(30)
    before, started = _cpu(pid), time.monotonic()
    for i in paced(range(messages), rate):
        producer.produce(topic, b"x" * 300, key=str(i).encode())
        producer.poll(0)
    producer.flush(30)
    deadline = time.monotonic() + 30
    while read < messages + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu, wall = _cpu(pid) - before, time.monotonic() - started
    stop.set()
    thread.join(5)
    consumer.close()
    admin.delete_topics([topic])
    if read < messages + 1:
        raise RuntimeError(f"{topic}: {read} of {messages + 1} messages read back")
    return {"broker_cpu_s": round(cpu, 2), "cpu_ms_per_message": round(cpu / messages * 1000, 3),
            "broker_cores": round(cpu / wall, 3), "wall_s": round(wall, 2)}  # fmt: skip


def run_setting(name: str, flags: tuple[str, ...], args: argparse.Namespace) -> dict[str, Any]:
    """A fresh broker with ``flags``: its start, then ``args.rounds`` rounds."""
    base = Settings()
    with tempfile.TemporaryDirectory(prefix="broker-bench-") as tmp:
        home = Path(tmp)
        kafka_port, controller_port = free_ports(2)  # never the stack's own
        service = KafkaService(home=home / "kafka", cache_dir=base.cache_dir,
                               version=base.kafka_version, port=kafka_port,
                               controller_port=controller_port, jvm_flags=flags)  # fmt: skip
        service.prepare()
        proc = ManagedProcess("kafka-bench", home / "run", home / "kafka.out")
        started = time.monotonic()
        pid = proc.start(service.command(), marker=service.marker)
        try:
            deadline = started + 120
            while not service.ready():
                if time.monotonic() > deadline or not proc.alive():
                    raise RuntimeError(f"the {name} broker did not start:\n{proc.tail()}")
                time.sleep(0.2)
            ready_s, start_cpu = time.monotonic() - started, _cpu(pid)
            rounds = [_round(service.address, pid, args.rate, args.messages, args.linger_ms)
                      for _ in range(args.rounds)]  # fmt: skip
            total = _cpu(pid)
        finally:
            proc.stop()
    return {"setting": name, "jvm_flags": list(flags), "ready_s": round(ready_s, 2),
            "start_cpu_s": round(start_cpu, 2), "rounds": rounds,
            "total_cpu_s": round(total, 2)}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="c2,c1", help=f"of {', '.join(SETTINGS)}")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second; 0: at once")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1, help="times through the settings")
    parser.add_argument("--linger-ms", type=float, default=0.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    report: dict[str, Any] = {
        "benchmark": "kafka_broker",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "runs": [],
    }
    for _ in range(max(1, args.repeat)):
        for name in names:
            result = run_setting(name, SETTINGS[name], args)
            report["runs"].append(result)
            per = " / ".join(f"{r['cpu_ms_per_message']:.2f}" for r in result["rounds"])
            print(f"{name}: ready {result['ready_s']} s, start {result['start_cpu_s']} CPU s, "
                  f"rounds {per} CPU ms/message, total {result['total_cpu_s']} CPU s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
