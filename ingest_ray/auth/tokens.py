"""JWT bearer tokens (PyJWT) with a pinned algorithm, required expiry, audience and issuer.

Claims: ``sub`` (who), ``tenant`` (whose jobs), ``scope`` (space separated, OAuth style). A token
signed with another algorithm than the configured one (``none`` included) never verifies.
"""

from __future__ import annotations

from typing import Any

import jwt

from ingest_ray.auth.principal import TENANT_PATTERN, Principal, known_scopes

_ASYMMETRIC = ("RS", "ES", "PS", "Ed")


class JwtVerifier:
    """Verify bearer tokens against one key and one algorithm."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        algorithm: str = "HS256",
        audience: str | None = None,
        issuer: str | None = None,
        leeway_s: float = 0.0,
    ) -> None:
        if algorithm.lower() == "none":
            raise ValueError("the 'none' algorithm is never accepted")
        asymmetric = algorithm.startswith(_ASYMMETRIC)
        key = public_key if asymmetric else secret
        if not key:
            need = "api_jwt_public_key" if asymmetric else "api_jwt_secret"
            raise ValueError(f"{algorithm} tokens need {need}")
        self._key = key
        self._algorithm = algorithm
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway_s

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims; raise ``jwt.InvalidTokenError`` when anything is wrong."""
        required = ["exp", "sub", "tenant"]
        required += ["aud"] if self._audience else []
        required += ["iss"] if self._issuer else []
        return jwt.decode(
            token,
            self._key,
            algorithms=[self._algorithm],
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": required, "verify_aud": self._audience is not None},
        )

    def verify(self, token: str) -> Principal | None:
        """The principal a valid token names; ``None`` for any invalid token."""
        try:
            claims = self.decode(token)
        except jwt.InvalidTokenError:
            return None
        tenant, subject, scope = claims.get("tenant"), claims.get("sub"), claims.get("scope", "")
        if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
            return None
        if not isinstance(subject, str) or not isinstance(scope, str):
            return None
        return Principal(tenant_id=tenant, scopes=known_scopes(scope), subject=subject)
