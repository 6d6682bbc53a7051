"""Accelerator slot utilisation (``ingest-ray bench accel``): a simulated accelerator stage as the
``mineru`` pool of ``two_phase``, with the real CPU stages around it, fed a backlog of hundreds of
documents, through ingest_ray and through Ray Data on the same local Ray."""
