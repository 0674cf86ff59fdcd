"""TLS contexts for destinations with a client certificate (mutual TLS) or CAs of their own.

Each context starts from the system's defaults (certificate and hostname verification
on) and adds the destination's CA certificates and its certificate chain. OpenSSL loads
a chain only from a path, so the PEMs go through an anonymous in-memory file (Linux
`memfd`), never the disk; elsewhere a private temporary file, removed at once.
Contexts are cached by the options' key: making one costs a key parse.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from courier.adapters.base import RequestOptions

MAX_CONTEXTS: Final = 256


@contextmanager
def _pem_path(pem: str) -> Iterator[str]:
    data = pem.encode("utf-8")
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("courier-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as folder:  # pragma: no cover - not Linux
        path = os.path.join(folder, "chain.pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        yield path


def make_context(
    client_certificate: tuple[str, str] | None, ca_certificate: str | None
) -> ssl.SSLContext:
    """A verifying client context; raises ssl.SSLError for PEMs OpenSSL refuses."""
    context = ssl.create_default_context()
    if ca_certificate:
        context.load_verify_locations(cadata=ca_certificate)
    if client_certificate is not None:
        certificate, key = client_certificate
        with _pem_path(f"{key.strip()}\n{certificate.strip()}\n") as path:
            context.load_cert_chain(path)
    return context


class TlsContexts:
    """The TLS contexts of the destinations this worker delivers to, least recent out."""

    def __init__(self, max_contexts: int = MAX_CONTEXTS) -> None:
        self._max = max_contexts
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()

    def get(self, options: RequestOptions) -> tuple[str, ssl.SSLContext] | None:
        if options.client_certificate is None and not options.ca_certificate:
            return None
        context = self._contexts.get(options.key)
        if context is None:
            context = make_context(options.client_certificate, options.ca_certificate)
            self._contexts[options.key] = context
            if len(self._contexts) > self._max:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(options.key)
        return options.key, context
