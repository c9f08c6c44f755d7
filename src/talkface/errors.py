"""The one exception type for problems a user can fix (bad input, missing voice, unwritable path)."""


class TalkfaceError(Exception):
    """Bad input or an unusable resource; the CLI prints its message as one line and exits non-zero."""
