"""JWT verification, scopes and principals (no services)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ingest_ray.auth import JwtVerifier, Principal, Scope, parse_scopes

SECRET = "unit-secret-" + "0123456789abcdef" * 4  # long enough for HS512 too


def _token(key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    body = {"sub": "u", "tenant": "t1", "scope": "jobs:read jobs:write", "aud": "api",
            "iss": "iss", "exp": int(time.time()) + 60}  # fmt: skip
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm)


@pytest.fixture
def verifier() -> JwtVerifier:
    return JwtVerifier(secret=SECRET, algorithm="HS256", audience="api", issuer="iss")


def test_jwt_valid_token_gives_principal(verifier: JwtVerifier) -> None:
    principal = verifier.verify(_token(scope="jobs:read jobs:write admin:all"))
    assert principal == Principal("t1", frozenset({Scope.JOBS_READ, Scope.JOBS_WRITE}), subject="u")


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 5},
        {"exp": None},
        {"aud": "other"},
        {"aud": None},
        {"iss": "evil"},
        {"tenant": None},
        {"tenant": "bad tenant!"},
        {"tenant": 7},
        {"sub": None},
    ],
)
def test_jwt_bad_claims_are_rejected(verifier: JwtVerifier, claims: dict[str, Any]) -> None:
    assert verifier.verify(_token(**claims)) is None


def test_jwt_algorithm_is_pinned(verifier: JwtVerifier) -> None:
    unsigned = _token(key=None, algorithm="none")
    other_alg = _token(algorithm="HS512")
    wrong_key = _token(key=SECRET + "x")
    assert [verifier.verify(t) for t in (unsigned, other_alg, wrong_key, "x.y.z", "")] == [None] * 5


def test_jwt_none_algorithm_and_missing_key_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="none"):
        JwtVerifier(secret=SECRET, algorithm="none")
    with pytest.raises(ValueError, match="public_key"):
        JwtVerifier(secret=SECRET, algorithm="RS256")


def test_jwt_rs256_with_public_key_rejects_hs256_confusion() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    verifier = JwtVerifier(public_key=public_pem, algorithm="RS256", audience="api", issuer="iss")
    good = verifier.verify(_token(key=private, algorithm="RS256"))
    assert good is not None and good.tenant_id == "t1"
    with pytest.raises(jwt.InvalidKeyError):  # PyJWT refuses a PEM as an HMAC secret
        _token(key=public_pem, algorithm="HS256")


def test_scopes_parse_and_reject_unknown() -> None:
    assert parse_scopes("jobs:read, jobs:cancel") == {Scope.JOBS_READ, Scope.JOBS_CANCEL}
    assert parse_scopes(["jobs:write"]) == {Scope.JOBS_WRITE}
    with pytest.raises(ValueError, match="jobs:admin"):
        parse_scopes("jobs:read jobs:admin")
    principal = Principal("t", frozenset({Scope.JOBS_READ}), key_id="k")
    assert principal.has(Scope.JOBS_READ) and not principal.has(Scope.JOBS_WRITE)
