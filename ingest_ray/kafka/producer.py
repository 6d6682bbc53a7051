"""Idempotent Kafka producer: ``acks=all``, delivery reports surfaced as errors, flush on close."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import Producer as _Producer

from ingest_ray.errors import KafkaDeliveryError
from ingest_ray.events import Envelope, encode
from ingest_ray.kafka.admin import LIBRDKAFKA_LOG

Headers = Mapping[str, str | bytes]


class Producer:
    """Thin, typed wrapper over confluent-kafka's producer.

    ``send`` returns a future resolved by the delivery report; ``flush`` raises
    :class:`KafkaDeliveryError` naming every message the broker did not take since the last flush.
    A full local queue waits at most ``queue_wait_s`` for room, then raises.
    """

    queue_wait_s: float = 30.0

    def __init__(self, bootstrap_servers: str, **overrides: Any) -> None:
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.timeout.ms": 30000,
            "client.id": "ingest-ray-producer",
        }
        config.setdefault("logger", LIBRDKAFKA_LOG)
        config.update(overrides)
        self._producer = _Producer(config)
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._closed = False

    def send(
        self, topic: str, event: Envelope, *, key: str | None, headers: Headers | None = None
    ) -> Future[Message]:
        """Queue one envelope; the future resolves when the broker acknowledged it."""
        return self.send_raw(topic, encode(event), key=key, headers=headers)

    def send_raw(
        self, topic: str, value: bytes, *, key: str | None, headers: Headers | None = None
    ) -> Future[Message]:
        """Queue raw bytes (dead letters carry the original value)."""
        future: Future[Message] = Future()

        def report(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                future.set_result(msg)
                return
            reason = f"{topic} key={key!r}: {err.str()}"
            with self._lock:
                self._failures.append(reason)
            future.set_exception(KafkaDeliveryError(reason, permanent=_permanent(err)))

        deadline = time.monotonic() + self.queue_wait_s
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key.encode() if key is not None else None,
                    headers=list(headers.items()) if headers else None,
                    on_delivery=report,
                )
                break
            except BufferError as exc:  # local queue full: serve delivery reports, then retry
                if time.monotonic() > deadline:
                    raise KafkaDeliveryError(
                        f"{topic}: local queue full for {self.queue_wait_s}s"
                    ) from exc
                self._producer.poll(0.1)
            except KafkaException as exc:  # refused before sending, e.g. too large
                err = exc.args[0]
                raise KafkaDeliveryError(
                    f"{topic} key={key!r}: {err.str()}", permanent=_permanent(err)
                ) from exc
        self._producer.poll(0)
        return future

    def flush(self, timeout: float = 30.0) -> None:
        """Wait for every queued message; raise if any was not delivered."""
        remaining = self._producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if remaining:
            failures.append(f"{remaining} message(s) still queued after {timeout}s")
        if failures:
            raise KafkaDeliveryError("delivery failed: " + "; ".join(failures[:10]))

    def close(self, timeout: float = 30.0) -> None:
        """Flush and release; safe to call twice."""
        if not self._closed:
            self._closed = True
            self.flush(timeout)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PERMANENT = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE, KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD, KafkaError.TOPIC_AUTHORIZATION_FAILED,
})  # fmt: skip


def _permanent(err: KafkaError) -> bool:
    """Whether sending the same message again cannot succeed."""
    return err.code() in _PERMANENT or (err.fatal() and not err.retriable())
