"""User-facing errors: the CLI prints them as one line, never a traceback."""


class EdgesegError(Exception):
    """A problem with the user's input (file, config, data) that has a one-line explanation."""


def fail(path, problem: str) -> "EdgesegError":
    """Build an error that names the offending file first: ``<path>: <problem>``."""
    return EdgesegError(f"{path}: {problem}")
