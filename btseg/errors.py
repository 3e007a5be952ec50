"""Errors that users can act on.

Every BtsegError says what is wrong, where, and how to fix it. The dashboard shows them with
st.error and keeps serving; anything that is not a BtsegError is a bug.
"""

from __future__ import annotations


class BtsegError(Exception):
    """A problem with the user's input or environment, with the fix.

    Args:
        problem: what is wrong, as a sentence.
        where: the file, folder, column or field concerned.
        fix: what the user should do about it.
    """

    def __init__(self, problem: str, *, where: str | None = None, fix: str | None = None):
        self.problem = problem
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.problem}" if self.where else self.problem
        text = text.rstrip(".") + "."
        if self.fix:
            text += " " + self.fix.rstrip(".") + "."
        return text

    def __str__(self) -> str:
        return self.message


class DataError(BtsegError):
    """The dataset folder or its metadata table is missing, incomplete or malformed."""


class ImageError(BtsegError):
    """An image file cannot be decoded, is empty, too large or not an image."""


class AnnotationError(BtsegError):
    """A LabelMe JSON file is malformed or holds shapes btseg cannot use."""


class RunError(BtsegError):
    """A model run folder is missing, incomplete, corrupt or incompatible."""


class ConfigError(BtsegError):
    """A setting or command-line option has an invalid value."""


def read_file_bytes(
    path, error: type[BtsegError], *, where: str, name: str, kind: str, point_to: str
) -> bytes:
    """The bytes of a file, or `error` saying why they cannot be read: no such file, a folder,
    or an OS error (permissions, I/O). `name` is the file in a sentence ("the image file"),
    `kind` what it should be ("an image file"), `point_to` what to choose instead of a folder
    ("the .json file")."""
    from pathlib import Path

    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(
            f"{name} does not exist",
            where=where,
            fix=f"Check the path {path}",
        ) from None
    except IsADirectoryError:
        raise error(f"is a folder, not {kind}", where=where, fix=f"Point to {point_to}") from None
    except OSError as error_:
        raise error(
            f"cannot be read ({error_.strerror or error_})",
            where=where,
            fix="Check that the file exists and that you may read it",
        ) from None
