"""The one import site of ``audioop``.

Python 3.11 and 3.12 emit a DeprecationWarning on import (3.13 removed the module; ``audioop-lts``
brings it back under the same name). Importing it once here, with that warning silenced, keeps the
warning out of every call's logs while the rest of the package imports a plain module object.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["audioop"]
