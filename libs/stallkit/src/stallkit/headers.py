"""Security headers on every response of every service, added where the response has not set
its own (the pages' and their files' headers win: their policy and their caching).

- ``X-Content-Type-Options: nosniff``: a browser takes each body for its declared type only.
- ``Referrer-Policy: no-referrer``: no URL (with its ids) leaks to another site.
- ``X-Frame-Options: DENY``: no page can be framed (clickjacking); the pages' CSP also says
  ``frame-ancestors 'none'``. The API sends no CSP of its own: ``/docs`` loads Swagger UI's
  files from a CDN, and a JSON body is not rendered.
- ``Cross-Origin-Opener-Policy: same-origin``: another site's window cannot script a page.
- ``Cache-Control: no-store``: answers carry personal data (profiles, bookings, cases) and
  tokens, and must stay out of shared and browser caches. A response that may be cached says
  so itself (the pages, their files, the JWKS, evidence photos, the feed).

No ``Strict-Transport-Security``: TLS ends at the ingress, which knows the public scheme and
host and sets HSTS there (see ``deploy/README.md``); the services serve plain HTTP behind it.
"""

from __future__ import annotations

#: Each header with its value, as ASGI raw headers (names lower case).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus each security header they do not set already."""
    present = {name.lower() for name, _ in headers}
    return headers + [header for header in SECURITY_HEADERS if header[0] not in present]
