"""The chaos suite's harness: real services, random faults, and the checks that nothing was lost
or done twice (``tests/chaos/`` runs a short form; ``ingest-ray bench chaos`` the long one)."""
