"""The secret half of an API key, for tests that look for it where it must not be."""

from courier.tenancy import KEY_PREFIX


def key_secret(key: str) -> str:
    """Everything after the tenant id. The secret is URL-safe base64 and may itself hold
    '_', so splitting at the last '_' can leave one character, which any text contains."""
    tenant_hex, sep, secret = key.removeprefix(KEY_PREFIX).partition("_")
    assert sep and len(tenant_hex) == 32 and len(secret) >= 32, "not an API key"
    return secret
