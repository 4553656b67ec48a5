"""mailtool: send, fetch, mirror and debug mail from a shell, a cron job or a pipeline."""

__version__ = "0.1.0"
