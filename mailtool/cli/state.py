"""Process-wide CLI settings read by the error handler before any context exists."""

verbosity = 0
quiet = False


def reset() -> None:
    global verbosity, quiet
    verbosity = 0
    quiet = False
