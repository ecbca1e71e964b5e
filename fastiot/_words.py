"""Words for what fastiot says to a person: counts with the noun that fits them.

The one plural helper of the project: the command line (``fastiot.cli.commands``) uses it, and the
widgets (``fastiot_widgets._common.plural``) re-export it.

Example:
    >>> plural(1, "message"), plural(3, "message"), plural(2, "entry", "entries")
    ('1 message', '3 messages', '2 entries')
"""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``count`` with the noun that fits it, thousands separated.

    Args:
        count: How many.
        singular: The noun for one (``"row"``).
        plural_form: The noun for any other count; ``None`` adds an "s" (``"rows"``).

    Example:
        >>> plural(1, "row"), plural(2, "row"), plural(1234, "older line"), plural(2, "entry", "entries")
        ('1 row', '2 rows', '1,234 older lines', '2 entries')
    """
    word = singular if count == 1 else plural_form or f"{singular}s"
    return f"{count:,} {word}"
