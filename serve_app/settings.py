"""Settings of the job API (``INGEST_RAY_API_*``); Redis, Kafka and topics come from the core
:class:`ingest_ray.config.Settings`."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest_ray.auth import JwtVerifier


class ApiSettings(BaseSettings):
    """HTTP limits, SSE timing, rate limits and JWT verification of the job API."""

    model_config = SettingsConfigDict(env_prefix="INGEST_RAY_API_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    replicas: int = Field(default=1, ge=1)
    #: CPUs each Serve replica reserves: the API waits on Redis and Kafka, so a fraction is
    #: plenty, and the stage pools cannot starve the API of the one CPU Serve asks for by default
    replica_num_cpus: float = Field(default=0.25, ge=0)
    #: largest JSON body accepted (413 above)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    #: largest uploaded PDF in MiB (413 above)
    max_upload_mb: int = Field(default=50, ge=1)
    #: seconds between SSE heartbeat comments
    sse_heartbeat_s: float = Field(default=15.0, gt=0)
    #: seconds between polls of a job's event stream while nothing new arrives
    sse_poll_s: float = Field(default=0.5, gt=0, le=10)
    #: per-tenant request budget (token bucket in Redis); 0 disables the limit
    rate_per_s: float = Field(default=50.0, ge=0)
    burst: float = Field(default=100.0, ge=1)
    #: connections of each replica's shared asyncio Redis pool
    redis_max_connections: int = Field(default=64, ge=2)
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_algorithm: str = "HS256"
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway_s: float = Field(default=0.0, ge=0)
    #: seconds a /readyz Kafka probe may take
    ready_timeout_s: float = Field(default=2.0, gt=0)

    @property
    def max_upload_bytes(self) -> int:
        """The upload cap in bytes."""
        return self.max_upload_mb * 1024 * 1024

    def jwt_verifier(self) -> JwtVerifier | None:
        """A verifier when a JWT key is configured; ``None`` means API keys only."""
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        if not secret and not self.jwt_public_key:
            return None
        return JwtVerifier(
            secret=secret,
            public_key=self.jwt_public_key,
            algorithm=self.jwt_algorithm,
            audience=self.jwt_audience,
            issuer=self.jwt_issuer,
            leeway_s=self.jwt_leeway_s,
        )
