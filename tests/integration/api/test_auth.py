"""Authentication, scopes and tenant isolation on every route."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.integration.api.conftest import JWT_SECRET, ApiEnv, token

JOB_ROUTES = [
    ("GET", "/jobs/{id}"),
    ("GET", "/jobs/{id}/events"),
    ("POST", "/jobs/{id}/cancel"),
    ("POST", "/jobs/{id}/retry"),
]
ALL_ROUTES = [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/stats"), *JOB_ROUTES]


@pytest.fixture(scope="module")
def job_of_a(api_env: ApiEnv) -> str:
    with api_env.client("a") as c:
        r = c.post("/jobs", json={"source": {"kind": "text", "value": "tenant a only"}})
    return str(r.json()["jobs"][0]["job_id"])


def _call(env: ApiEnv, method: str, path: str, headers: dict[str, str]) -> int:
    body = {"source": {"kind": "text", "value": "auth probe"}} if method == "POST" else None
    with env.client(None) as c:
        r = c.request(method, path, headers=headers, json=body)
        return r.status_code


def _bad_credentials(env: ApiEnv) -> dict[str, dict[str, str]]:
    now = int(time.time())
    _, revoked = env.store.create("a", "jobs:read jobs:write jobs:cancel", "revoked")
    env.store.revoke(next(k.key_id for k in env.store.list("a") if k.name == "revoked"))
    unsigned = jwt.encode({"sub": "x", "tenant": "a", "scope": "jobs:read", "exp": now + 60,
                           "aud": "ingest-ray-api", "iss": "https://issuer.test"},
                          key=None, algorithm="none")  # fmt: skip
    return {
        "none": {},
        "unknown key": {"X-API-Key": "irk_not-a-real-key"},
        "unknown bearer key": {"Authorization": "Bearer irk_not-a-real-key"},
        "revoked key": {"X-API-Key": revoked},
        "basic scheme": {"Authorization": "Basic YTpi"},
        "expired jwt": {"Authorization": f"Bearer {token(exp=now - 10)}"},
        "wrong audience": {"Authorization": f"Bearer {token(aud='someone-else')}"},
        "no audience": {"Authorization": f"Bearer {token(aud=None)}"},
        "wrong issuer": {"Authorization": f"Bearer {token(iss='https://evil.test')}"},
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "wrong secret": {
            "Authorization": "Bearer "
            + jwt.encode({"sub": "x", "tenant": "a", "exp": now + 60}, JWT_SECRET + "x", "HS256")
        },
        "no exp": {"Authorization": f"Bearer {token(exp=None)}"},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
    }


def test_auth_matrix_bad_credentials_get_401_never_success(api_env: ApiEnv, job_of_a: str) -> None:
    outcomes: dict[tuple[str, str, str], int] = {}
    for name, headers in _bad_credentials(api_env).items():
        for method, path in ALL_ROUTES:
            outcomes[(name, method, path)] = _call(
                api_env, method, path.format(id=job_of_a), headers
            )
    successes = [k for k, v in outcomes.items() if v < 400]
    assert successes == []
    assert {k: v for k, v in outcomes.items() if v != 401} == {}


def test_auth_missing_scope_gets_403(api_env: ApiEnv, job_of_a: str) -> None:
    needs = {("GET", "/jobs"): "read", ("GET", "/stats"): "read", ("POST", "/jobs"): "write",
             ("GET", "/jobs/{id}"): "read", ("GET", "/jobs/{id}/events"): "read",
             ("POST", "/jobs/{id}/cancel"): "cancel", ("POST", "/jobs/{id}/retry"): "write"}  # fmt: skip
    codes = {}
    for (method, path), scope in needs.items():
        for key in ("a_read", "a_write", "a_cancel"):
            if key.endswith(scope):
                continue
            headers = {"Authorization": f"Bearer {api_env.keys[key]}"}
            codes[(key, method, path)] = _call(api_env, method, path.format(id=job_of_a), headers)
    assert set(codes.values()) == {403}
    scoped = {"Authorization": f"Bearer {token(scope='jobs:read')}"}
    assert _call(api_env, "GET", f"/jobs/{job_of_a}", scoped) == 200
    assert _call(api_env, "POST", f"/jobs/{job_of_a}/cancel", scoped) == 403


def test_auth_valid_credentials_in_every_form(api_env: ApiEnv, job_of_a: str) -> None:
    forms = [
        {"Authorization": f"Bearer {api_env.keys['a']}"},
        {"X-API-Key": api_env.keys["a"]},
        {"Authorization": f"Bearer {token()}"},
    ]
    assert [_call(api_env, "GET", f"/jobs/{job_of_a}", h) for h in forms] == [200, 200, 200]


def test_tenancy_another_tenants_job_is_404_on_every_route(api_env: ApiEnv, job_of_a: str) -> None:
    as_b = [
        {"Authorization": f"Bearer {api_env.keys['b']}"},
        {"Authorization": f"Bearer {token(tenant='b', sub='bob')}"},
    ]
    codes = {(m, p, i): _call(api_env, m, p.format(id=job_of_a), h)
             for m, p in JOB_ROUTES for i, h in enumerate(as_b)}  # fmt: skip
    assert set(codes.values()) == {404}
    with api_env.client("b") as c:
        listed = c.get("/jobs", params={"limit": 100}).json()["items"]
    assert job_of_a not in {j["job_id"] for j in listed}
    assert api_env.ledger.get(job_of_a).status.value == "queued"  # b's cancel changed nothing
