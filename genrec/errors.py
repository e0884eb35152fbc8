"""Errors that scripts report as one line and a non-zero exit, never as a traceback."""

import config


class GenrecError(Exception):
    """A problem the user can fix: bad input, bad config, a missing or stale artifact."""


class ConfigError(GenrecError, config.ConfigError):
    """A configuration value is out of range, unknown or inconsistent (config.validate raises the base class)."""


class DataError(GenrecError):
    """An input file is missing, empty or malformed. The message names the file, line and column."""

    def __init__(self, path, problem: str, line: int | None = None, column: str | None = None):
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {problem}")


class ArtifactError(GenrecError):
    """An artifact of an earlier stage is missing, stale or does not match this stage's inputs."""
