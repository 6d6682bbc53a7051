"""Names shared by every process: Kafka topics and Redis key layout, in one place."""

from __future__ import annotations

from typing import Final

TOPIC_REQUESTS: Final = "ingest.requests.v1"
TOPIC_RESULTS: Final = "ingest.results.v1"
TOPIC_MAPPING: Final = "mapping.events.v1"
TOPIC_DEADLETTER: Final = "ingest.deadletter.v1"
ALL_TOPICS: Final = (TOPIC_REQUESTS, TOPIC_RESULTS, TOPIC_MAPPING, TOPIC_DEADLETTER)

#: Headers set on every dead letter, all of them on every letter (values are UTF-8 strings,
#: empty where a field does not apply); see ``ingest_ray/deadletters.py``.
DLQ_HEADER_KIND: Final = "x-dlq-kind"
DLQ_HEADER_EVENT_ID: Final = "x-dlq-event-id"
DLQ_HEADER_REASON: Final = "x-dlq-reason"
DLQ_HEADER_ERROR_TYPE: Final = "x-dlq-error-type"
DLQ_HEADER_TOPIC: Final = "x-dlq-origin-topic"
DLQ_HEADER_PARTITION: Final = "x-dlq-origin-partition"
DLQ_HEADER_OFFSET: Final = "x-dlq-origin-offset"
DLQ_HEADER_JOB_ID: Final = "x-dlq-job-id"
DLQ_HEADER_TENANT: Final = "x-dlq-tenant-id"
DLQ_HEADER_DOC_KEY: Final = "x-dlq-doc-key"
DLQ_HEADER_STAGE: Final = "x-dlq-stage"
DLQ_HEADER_ATTEMPTS: Final = "x-dlq-attempts"
DLQ_HEADER_AT: Final = "x-dlq-at"
#: the original value's size in bytes when the letter carries only its first part, else empty
DLQ_HEADER_TRUNCATED: Final = "x-dlq-truncated"
DLQ_HEADERS: Final = (
    DLQ_HEADER_KIND,
    DLQ_HEADER_EVENT_ID,
    DLQ_HEADER_REASON,
    DLQ_HEADER_ERROR_TYPE,
    DLQ_HEADER_TOPIC,
    DLQ_HEADER_PARTITION,
    DLQ_HEADER_OFFSET,
    DLQ_HEADER_JOB_ID,
    DLQ_HEADER_TENANT,
    DLQ_HEADER_DOC_KEY,
    DLQ_HEADER_STAGE,
    DLQ_HEADER_ATTEMPTS,
    DLQ_HEADER_AT,
    DLQ_HEADER_TRUNCATED,
)

#: Redis key prefix; every key the ledger writes starts with it (see ledger/redis.py).
REDIS_PREFIX: Final = "ir:"

#: Default cap of a job's event stream (XADD MAXLEN ~).
EVENT_STREAM_MAXLEN: Final = 1000
