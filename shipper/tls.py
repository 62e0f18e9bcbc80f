"""One TLS client context for every sink that speaks TLS itself.

The options are the shared groups of :mod:`shipper.spec` (``ca_file``, ``cert_file``,
``key_file``, ``insecure``), and so are the names in the errors::

    context = client_context(options.ca_file, options.cert_file, options.key_file,
                             options.insecure)

- ``ca_file`` replaces the system's CAs (as Go's ``RootCAs`` and every client library do);
  without it the system's are trusted.
- ``insecure`` verifies neither the certificate nor the host name; a client certificate is
  still presented (some client libraries drop it when verification is off: hence a context of
  our own rather than their keywords).
- ``cert_file`` with ``key_file`` (or one PEM file holding both) is the client certificate.

A file that cannot be used raises :class:`TLSFileError`, a ``ValueError`` whose message names
the parameter and the file and says what is wrong (not readable, no PEM certificate in it, a key
that does not belong to the certificate, an encrypted key), rather than OpenSSL's ``PEM lib``.
Build the context when the sink is made, so a bad file is a usage error at start, not a
failure at the first connection.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable


class TLSFileError(ValueError):
    """A TLS file that cannot be used; the message names the parameter and the file."""


def client_context(
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    insecure: bool = False,
) -> ssl.SSLContext:
    """An ``SSLContext`` for a client: trust ``ca_file`` (else the system's CAs), present
    ``cert_file``/``key_file``, skip verification when ``insecure``."""
    if key_file and not cert_file:
        raise TLSFileError(f"parameter key_file={key_file!r}: given without cert_file")
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
    except OSError as exc:  # ssl.SSLError is an OSError too
        raise TLSFileError(_ca_error(ca_file, exc)) from None
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        try:
            context.load_cert_chain(
                cert_file, key_file or None, password=_no_password(key_file or cert_file)
            )
        except TLSFileError:
            raise
        except OSError as exc:
            raise TLSFileError(_cert_error(cert_file, key_file, exc)) from None
    return context


def _reason(exc: BaseException) -> str:
    """OpenSSL's words without the C source location: ``[X509: ...] no certificate found``."""
    if isinstance(exc, ssl.SSLError):
        return str(exc).split(" (_ssl.c:")[0]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _ca_error(ca_file: str | None, exc: OSError) -> str:
    where = f"parameter ca_file={ca_file!r}"
    if not isinstance(exc, ssl.SSLError):
        return f"{where}: cannot read it ({_reason(exc)})"
    return f"{where}: no PEM certificate could be read from it ({_reason(exc)})"


def _cert_error(cert_file: str, key_file: str | None, exc: OSError) -> str:
    cert = f"parameter cert_file={cert_file!r}"
    key = f"parameter key_file={key_file!r}" if key_file else cert
    if not isinstance(exc, ssl.SSLError):
        where = key if key_file and not os.access(key_file, os.R_OK) else cert
        return f"{where}: cannot read it ({_reason(exc)})"
    if "KEY_VALUES_MISMATCH" in str(exc):
        return f"{cert}: the key ({key_file or cert_file!r}) is not this certificate's"
    cert_text, key_text = _peek(cert_file), _peek(key_file or cert_file)
    if cert_text is not None and "-----BEGIN CERTIFICATE-----" not in cert_text:
        return f"{cert}: no PEM certificate in it"
    if key_text is not None and "PRIVATE KEY-----" not in key_text:
        return f"{key}: no PEM private key in it" + ("" if key_file else " (give key_file)")
    return f"{cert}, key {key_file or cert_file!r}: cannot load them ({_reason(exc)})"


def _peek(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read(1 << 20)
    except OSError:
        return None


def _no_password(path: str) -> Callable[[], str]:
    """OpenSSL would prompt on the terminal for an encrypted key; a daemon must not wait."""

    def refuse() -> str:
        raise TLSFileError(
            f"parameter key_file={path!r}: the key is encrypted; give an unencrypted key"
        )

    return refuse
