"""Names shared by every process: Kafka topics and Redis key layout, in one place."""

from __future__ import annotations

from typing import Final

TOPIC_REQUESTS: Final = "ingest.requests.v1"
TOPIC_RESULTS: Final = "ingest.results.v1"
TOPIC_MAPPING: Final = "mapping.events.v1"
TOPIC_DEADLETTER: Final = "ingest.deadletter.v1"
ALL_TOPICS: Final = (TOPIC_REQUESTS, TOPIC_RESULTS, TOPIC_MAPPING, TOPIC_DEADLETTER)

#: Headers set on every dead letter (values are UTF-8 strings).
DLQ_HEADER_REASON: Final = "x-dlq-reason"
DLQ_HEADER_ERROR_TYPE: Final = "x-dlq-error-type"
DLQ_HEADER_TOPIC: Final = "x-dlq-origin-topic"
DLQ_HEADER_PARTITION: Final = "x-dlq-origin-partition"
DLQ_HEADER_OFFSET: Final = "x-dlq-origin-offset"

#: Redis key prefix; every key the ledger writes starts with it (see ledger/redis.py).
REDIS_PREFIX: Final = "ir:"

#: Default cap of a job's event stream (XADD MAXLEN ~).
EVENT_STREAM_MAXLEN: Final = 1000
