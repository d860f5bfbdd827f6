"""One error hierarchy whose messages a user can act on; the CLI maps it to exit codes."""


class SynthError(Exception):
    """Base of every error synth raises on purpose."""

    exit_code = 1


class UsageError(SynthError):
    """Bad flags, config, missing file, unknown format: nothing was written (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration key or value that cannot be used."""


class InputFileError(UsageError):
    """An input file that cannot be opened or understood as a whole."""


class FatalAPIError(SynthError):
    """The endpoint refused the run itself (400/401/403/404): retrying cannot help (exit 2)."""

    exit_code = 2


class StageFailed(SynthError):
    """The stage finished but some rows failed; they are retried on the next run (exit 1)."""

    exit_code = 1
