"""The HTTP API: `create_app(settings)` builds it; nothing is created at import time."""
