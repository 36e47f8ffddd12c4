"""Errors the user can act on. Each carries a one-line message meant for people, not a traceback."""


class XfrError(Exception):
    """Base class: a problem with the user's input or environment, explained in its message."""


class ModelFileError(XfrError):
    """A model file is missing, truncated, corrupt, foreign or incompatible."""


class ImageError(XfrError):
    """An image cannot be read or is unusable."""


class NoFaceError(ImageError):
    """No face was found in an image."""


class PairListError(XfrError):
    """A pair list (LFW pairs.txt or CSV) is malformed or names missing images."""


class StoreError(XfrError):
    """The case database or image store cannot be read or written (read-only folder, full disk, unknown id...)."""


class Cancelled(Exception):
    """Raised inside long work when the caller's cancel check returns True (not an error: nothing is reported).

    It lives here, not next to the engine, so the GUI can recognise it without importing torch.
    """


def user_message(exc: BaseException, expected: tuple[type[BaseException], ...] = ()) -> str:
    """The one line shown to people for ``exc`` (GUI dialogs and the command line use the same words).

    :class:`XfrError` (and the ``expected`` types a caller knows to carry readable text) say it themselves;
    memory and file-system errors get a plain description; anything else is flagged as unexpected, since it
    points at a bug rather than at the user's input.
    """
    if isinstance(exc, (XfrError, *expected)):
        return str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc.strerror or exc)
    lines = str(exc).splitlines()
    return f"unexpected {type(exc).__name__}: {lines[0][:300] if lines else ''}"
