"""The one exception the configuration package raises."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason, one line each.

    Each problem reads ``FILE:LINE: FIELD.PATH: what was expected``. ``str()`` joins them
    with newlines so that a CLI can print the exception as it is. No problem ever carries
    a secret's value: only field names, environment variable names and file paths.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
