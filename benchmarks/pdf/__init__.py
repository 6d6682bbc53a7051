"""PDF throughput: the ``two_phase`` pipeline over a corpus of real PDFs, through ingest_ray end
to end, a plain single-process loop over the same stage objects, and Ray Data
(``ingest-ray bench pdf``). Every system's stages are wrapped by :mod:`benchmarks.pdf.timing`,
which measures the CPU spent inside stage code, so what is left is orchestration overhead.
"""
