"""gamestore: an embedded storage engine for self-play game records."""
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all

__version__ = "0.1.0"
__all__ = list(_errors_all)
