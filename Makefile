# The two commands of the README, and the pieces they are made of.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: bootstrap demo up test lint stack-up stack-down

bootstrap:
	@bash scripts/bootstrap.sh

## The main job on the default local setup: local Kafka + Redis, then the demo.
demo: bootstrap
	$(BIN)/ingest-ray stack up
	$(BIN)/ingest-ray demo

## The whole local service in the foreground (Ctrl-C stops all of it).
up: bootstrap
	$(BIN)/ingest-ray up

## The whole test suite (starts the local stack when KAFKA_BOOTSTRAP_SERVERS/REDIS_URL are unset).
test: bootstrap
	$(BIN)/python -m pytest

lint: bootstrap
	$(BIN)/ruff check ingest_ray serve_app tests benchmarks
	$(BIN)/ruff format --check ingest_ray serve_app tests benchmarks
	$(BIN)/mypy

stack-up: bootstrap
	$(BIN)/ingest-ray stack up

stack-down:
	$(BIN)/ingest-ray stack down
