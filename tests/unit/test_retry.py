from __future__ import annotations

import pytest

from ingest_ray.errors import PermanentError, RetryableError
from ingest_ray.retry import RetryPolicy


def test_retry_policy_full_jitter_stays_within_exponential_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=4)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        delays = [policy.delay_s(attempt) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.7  # jitter spreads over the whole range


def test_retry_policy_honours_retry_after_as_a_floor() -> None:
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=30)
    error = RetryableError("slow down", retry_after=7)
    assert policy.delay_s(1, error) >= 7


def test_retry_policy_stops_after_max_attempts_and_on_permanent_errors() -> None:
    policy = RetryPolicy(max_attempts=3)
    flaky = RetryableError("x")
    assert policy.should_retry(flaky, 1)
    assert policy.should_retry(flaky, 2)
    assert not policy.should_retry(flaky, 3)
    assert not policy.should_retry(PermanentError("x"), 1)


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=5, max_delay_s=1)


def test_injected_transient_failures_stay_within_the_smallest_retry_budget() -> None:
    from ingest_ray.testing import flaky_try_fails

    jobs = [f"job-{i}" for i in range(2000)]
    always = [flaky_try_fails(j, "index", 1, 1.0, max_failed_try=2) for j in jobs]
    assert all(always)
    assert not any(flaky_try_fails(j, "index", 3, 1.0, max_failed_try=2) for j in jobs)
    share = sum(flaky_try_fails(j, "index", 1, 0.05, max_failed_try=2) for j in jobs) / len(jobs)
    assert 0.03 < share < 0.07  # the rate is a share of tries
    # the same try always gives the same answer, and tries are not all alike
    assert [flaky_try_fails(j, "chunk", 2, 0.5, max_failed_try=2) for j in jobs[:50]] == [
        flaky_try_fails(j, "chunk", 2, 0.5, max_failed_try=2) for j in jobs[:50]
    ]
    assert len({flaky_try_fails(j, "chunk", 2, 0.5, max_failed_try=2) for j in jobs[:50]}) == 2
