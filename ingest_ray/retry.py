"""Retry policy: exponential backoff with full jitter and a cap, per stage, in one place.

Built on tenacity's strategies (``wait_random_exponential`` is exponential backoff with full
jitter; ``stop_after_attempt`` bounds the attempts), evaluated by the Dispatcher so a waiting
retry sits in a timer heap and holds no worker. Whether to retry travels on the exception
(``IngestError.retryable``); a server's ``retry_after`` is honoured as a floor.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, stop_after_attempt, wait_random_exponential

from ingest_ray.errors import IngestError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a stage is retried.

    ``max_attempts`` counts every try, the first included. The delay before try ``n + 1`` is
    uniform in ``[0, min(max_delay_s, base_delay_s * 2 ** (n - 1))]`` (full jitter).
    """

    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")

    def should_retry(self, error: IngestError, attempt: int) -> bool:
        """Whether a failure of try ``attempt`` (1-based) gets another try."""
        return error.retryable and not stop_after_attempt(self.max_attempts)(_state(attempt))

    def delay_s(self, attempt: int, error: IngestError | None = None) -> float:
        """Seconds to wait after failed try ``attempt`` before the next one."""
        wait = wait_random_exponential(multiplier=self.base_delay_s, max=self.max_delay_s)
        delay = float(wait(_state(attempt)))
        if error is not None and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.max_delay_s))
        return delay


def _state(attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return state


#: The policy of stages that do not name one.
DEFAULT_RETRY = RetryPolicy()

#: The budget of tries lost to the infrastructure (an actor died, a lease ran out): quick, since
#: nothing is wrong with the work itself, and bounded, so a stage that kills its actor every time
#: still ends.
LOSS_RETRY = RetryPolicy(max_attempts=8, base_delay_s=0.5, max_delay_s=10.0)
