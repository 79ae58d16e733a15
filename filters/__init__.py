"""Keep/drop/score decisions. Importing the package registers its stages (DESIGN §6)."""

import filters.code  # noqa: F401
from filters import format, math  # noqa: F401
