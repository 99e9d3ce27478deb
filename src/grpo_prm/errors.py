"""The package's error base, apart from `cli` so that the method core (weights, loss, process sets) can refuse a bad
setting without importing the command-line layer."""


class InputError(ValueError):
    """Base of every refusal in this package (a bad setting, an unreadable input, a missing run): `exit_on_error` turns
    it into one line naming the culprit and exit status 1. Modules subclass it to say where a refusal comes from. Any
    other exception is a bug and keeps its traceback."""


class SettingError(InputError):
    """A setting (flag, config key, constructor argument) outside its type, range or choices; the message names it."""
