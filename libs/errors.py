"""User-facing errors: raised for bad input, printed as one line by the command-line scripts."""


class VOSError(Exception):
    """A problem with the user's input (file, key or value) that the message explains how to fix."""
