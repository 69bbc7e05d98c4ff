"""Errors a user can act on: the CLI prints them plainly, the service maps them to 4xx."""


class UserError(ValueError):
    """Bad input, bad spec, too little data, or a refused gate: the message says what and how to fix it."""


class ItemError(UserError):
    """A bad item of a batch: ``index`` says which."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index
