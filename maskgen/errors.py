"""One exception family; every message is one line a user can act on."""

from __future__ import annotations


class MaskgenError(Exception):
    """Base class of every error maskgen raises on purpose."""

    code = "error"


class ImageNotFound(MaskgenError):
    code = "not_found"


class NotAnImage(MaskgenError):
    code = "unreadable"


class TruncatedImage(MaskgenError):
    code = "truncated"


class UnsupportedImage(MaskgenError):
    code = "unsupported"


class TooManyPixels(MaskgenError):
    code = "too_large"


class UnknownName(MaskgenError, ValueError):
    """A registry lookup or option value that is not one of the valid choices."""

    code = "bad_argument"


class BadParameter(MaskgenError, ValueError):
    code = "bad_argument"


class MissingExtra(MaskgenError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    code = "missing_extra"


class NoFaceFound(MaskgenError):
    code = "no_face"
