"""The filter's own log: ``bandpass.log.info("...")``.

Inside the component each line goes to the host's log for this filter
(bounded per filter; ``bandpass test --show-log`` prints it). Natively,
lines go to standard error. ``print()`` also reaches the filter log (as
standard output), at no particular level.
"""

import sys

__all__ = ["debug", "info", "warn", "error"]

DEBUG, INFO, WARN, ERROR = 0, 1, 2, 3
_NAMES = ("debug", "info", "warn", "error")


def _to_stderr(level, message):
    print(f"[{_NAMES[level]}] {message}", file=sys.stderr)


# Where lines go; the component glue replaces it with the host's log.
_sink = _to_stderr


def debug(message):
    """Writes one line at debug level."""
    _sink(DEBUG, str(message))


def info(message):
    """Writes one line at info level."""
    _sink(INFO, str(message))


def warn(message):
    """Writes one line at warn level."""
    _sink(WARN, str(message))


def error(message):
    """Writes one line at error level."""
    _sink(ERROR, str(message))
