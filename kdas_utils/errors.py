"""The errors a user can cause or meet, all of one family.

Every error that a user's input explains (a data folder, a weight file, a checkpoint, a setting, a
frame to predict on) is a :class:`KDASError`, and its message says what to do. The command line
(:func:`kdas_utils.cli.main`) and the Colab buttons (:mod:`kdas_utils.colab`) catch this one class
(plus the two built-in kinds a user's path or value raises, see :data:`USER_ERRORS`) and show the
message in one line instead of a traceback. This module imports nothing of the package: every
floor may raise these.
"""

from __future__ import annotations


class KDASError(Exception):
    """The base of every user-facing error of the package; the message names the file or the value
    and what to do."""


class UsageError(KDASError):
    """Something the user asked for that cannot be done; the message says what to do instead."""


# The user's errors that the command line and the Colab panel show in one line: the package's own,
# and the built-in ones that a missing path (FileNotFoundError) or a value out of range (ValueError,
# e.g. from a library) raises.
USER_ERRORS: tuple[type[BaseException], ...] = (KDASError, FileNotFoundError, ValueError)
