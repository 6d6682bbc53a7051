"""A multi-node Ray cluster on one machine, and a simulated accelerator stage.

For tests and benchmarks of placement, node loss and scale-out without real hardware:
:class:`~ingest_ray.simulate.cluster.LocalCluster` starts a head and worker nodes (each its own
raylet, with the resources you give it) in a host process of its own; the stage in
:mod:`ingest_ray.simulate.accelerator` holds a custom resource for a fixed time per page.
"""
