"""Child process of the S3 tests: another process (another node, in a cluster) that builds its
blob store from the environment only (INGEST_RAY_BLOB_URL + AWS_*), as a Ray worker does.

    blob_child.py read DIGEST...   -> prints {"DIGEST": {"get": sha256, "path": sha256, "where": p}}
    blob_child.py write TEXT...    -> prints ["DIGEST", ...]
    blob_child.py missing DIGEST   -> prints the error type, whether it is a KeyError, retryable
"""

from __future__ import annotations

import hashlib
import json
import sys

from ingest_ray.storage import open_blob_store


def main() -> None:
    op, *args = sys.argv[1:]
    store = open_blob_store()
    if op == "read":
        out = {}
        for digest in args:
            path = store.path(digest)
            out[digest] = {
                "get": hashlib.sha256(store.get(digest)).hexdigest(),
                "path": hashlib.sha256(path.read_bytes()).hexdigest(),
                "where": str(path),
            }
        print(json.dumps(out))
    elif op == "write":
        print(json.dumps([store.put(text.encode()) for text in args]))
    elif op == "missing":
        try:
            store.get(args[0])
        except Exception as exc:
            info = {"type": type(exc).__name__, "key_error": isinstance(exc, KeyError)}
            print(json.dumps({**info, "retryable": getattr(exc, "retryable", None)}))
        else:
            print(json.dumps({"type": None}))


if __name__ == "__main__":
    main()
