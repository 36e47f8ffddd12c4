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
