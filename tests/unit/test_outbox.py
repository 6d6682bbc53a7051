from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from ingest_ray.errors import KafkaDeliveryError
from ingest_ray.ledger.base import OutboxEntry, OutboxMessage
from ingest_ray.outbox import OutboxRelay
from ingest_ray.testing import InMemoryLedger


class FakeSink:
    """A producer whose broker takes, refuses or loses what the test says."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.down = False
        self.refuse: set[str] = set()

    def send_raw(
        self, topic: str, value: bytes, *, key: str | None, headers: Mapping[str, str] | None = None
    ) -> Future[Any]:
        future: Future[Any] = Future()
        event_id = value.decode()
        if event_id in self.refuse:
            raise KafkaDeliveryError("message too large", permanent=True)
        if self.down:
            future.set_exception(KafkaDeliveryError("broker transport failure"))
        else:
            self.delivered.append(event_id)
            future.set_result(None)
        return future

    def flush(self, timeout: float = 30.0) -> None:
        if self.down:
            raise KafkaDeliveryError("1 message(s) not delivered")


def _messages(*ids: str) -> list[OutboxMessage]:
    return [OutboxMessage("t", "k", i.encode(), i) for i in ids]


def _relay(ledger: InMemoryLedger, sink: FakeSink, parked: list[str]) -> OutboxRelay:
    def park(entry: OutboxEntry, reason: str) -> None:
        parked.append(f"{entry.message.event_id}: {reason}")

    return OutboxRelay(ledger, sink, consumer="relay", park=park)


def test_relay_acknowledges_only_what_the_broker_took_and_sends_the_rest_later() -> None:
    ledger, sink, parked = InMemoryLedger(), FakeSink(), []
    relay = _relay(ledger, sink, parked)
    ledger.outbox_put(_messages("a", "b"))
    sink.down = True
    for _ in range(5):  # an outage of any length: nothing is dropped
        assert relay.step() == 0
    assert ledger.outbox_depth() == 2 and relay.stats.last_error is not None
    sink.down = False
    assert relay.step() == 2
    assert sink.delivered == ["a", "b"] and ledger.outbox_depth() == 0
    assert relay.stats.last_error is None and relay.stats.sent == 2


def test_relay_parks_a_message_the_broker_refuses_for_good_and_goes_on() -> None:
    ledger, sink, parked = InMemoryLedger(), FakeSink(), []
    relay = _relay(ledger, sink, parked)
    ledger.outbox_put(_messages("a", "huge", "c"))
    sink.refuse.add("huge")
    assert relay.step() == 2
    assert sink.delivered == ["a", "c"]
    assert parked == ["huge: message too large"]
    assert ledger.outbox_depth() == 0


def test_relay_raises_while_the_ledger_is_away_and_resumes_after() -> None:
    ledger, sink, parked = InMemoryLedger(), FakeSink(), []
    relay = _relay(ledger, sink, parked)
    ledger.outbox_put(_messages("a"))
    ledger.down = ConnectionError("redis is away")
    try:
        relay.step()
        raise AssertionError("the caller must see the outage")
    except ConnectionError:
        pass
    ledger.down = None
    assert relay.step() == 1


def test_a_second_relay_takes_over_what_a_dead_one_claimed() -> None:
    ledger, sink = InMemoryLedger(), FakeSink()
    ledger.outbox_put(_messages("a"))
    assert ledger.outbox_claim("dead-relay")  # claimed, never acknowledged
    other = OutboxRelay(ledger, sink, consumer="relay-2", park=lambda e, r: None, reclaim_idle_s=0)
    assert other.step() == 1 and sink.delivered == ["a"]
