"""Side-by-side orchestration benchmark: the same 4-stage no-op pipeline through ingest_ray,
Celery, Dramatiq and plain Ray actors (``ingest-ray bench orchestration``).

Celery and Dramatiq are optional (the ``bench`` extra); nothing here imports them until their
system is run.
"""
