"""Child process for the redelivery test: reads everything, stores the first N, then hangs."""

from __future__ import annotations

import sys
import time

from ingest_ray.kafka.consumer import Consumer


def main() -> None:
    bootstrap, group, topic, total, keep = sys.argv[1:6]
    # a short session so the group notices the death quickly
    consumer = Consumer(bootstrap, group, [topic], **{"session.timeout.ms": 6000})
    got = []
    deadline = time.monotonic() + 60
    while len(got) < int(total) and time.monotonic() < deadline:
        got += consumer.poll_batch(100, timeout=0.5)
    got.sort(key=lambda m: m.offset())
    consumer.store(got[: int(keep)])
    consumer.commit()
    print(f"read {len(got)} stored {keep}", flush=True)
    time.sleep(600)  # "processing" the rest when the parent kills us


if __name__ == "__main__":
    main()
