"""Kafka client: idempotent producer, at-least-once consumer, topic admin, health check."""

from __future__ import annotations

from ingest_ray.kafka.admin import ensure_topics
from ingest_ray.kafka.client import KafkaClient
from ingest_ray.kafka.consumer import Consumer
from ingest_ray.kafka.health import KafkaHealth, check_kafka
from ingest_ray.kafka.producer import Producer

__all__ = ["Consumer", "KafkaClient", "KafkaHealth", "Producer", "check_kafka", "ensure_topics"]
