"""Addresses out of text the dashboard shows.

A delivery's error is the channel's own words: an SMTP server's refusal names the
recipients it refused, a webhook's answer may quote a URL (and a Slack or Teams webhook
URL is a credential). The store keeps them as written; the dashboard shows them with
every e-mail address and every URL replaced.
"""

from __future__ import annotations

import re

__all__ = ["ADDRESS", "URL", "redact"]

ADDRESS, URL = "<address>", "<url>"
# Anything with a scheme (https://, smtp://, mailto: is an address below), up to a space
# or a quote; then whatever looks like local@domain.
_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>]+""")
# (A quote is allowed in an address's local part, but here it quotes the address.)
_ADDRESS = re.compile(r"[\w.!#$%&*+/=?^{|}~\-]+@[\w\-]+(?:\.[\w\-]+)*")


def redact(text: str | None) -> str | None:
    """``text`` with URLs as ``<url>`` and e-mail addresses as ``<address>``; None stays None."""
    if text is None:
        return None
    return _ADDRESS.sub(ADDRESS, _URL.sub(URL, text))
