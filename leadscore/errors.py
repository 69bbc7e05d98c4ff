"""Errors a user can act on: the CLI prints them plainly, the service maps them to 4xx."""


class UserError(ValueError):
    """Bad input, bad spec, too little data, or a refused gate: the message says what and how to fix it."""
