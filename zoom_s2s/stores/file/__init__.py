"""The file backend: token store, ``flock`` waiting and rate budget, for one host.

``docs/stores.rst`` describes the files and what the store trusts.
"""

from .budget import FileRateBudget
from .claims import FileClaims
from .store import MAX_FILE_BYTES, FileTokenStore

__all__ = ["MAX_FILE_BYTES", "FileClaims", "FileRateBudget", "FileTokenStore"]
