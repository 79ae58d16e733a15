"""Keep/drop/score decisions. Importing the package registers its stages (DESIGN §6)."""

import filters.code  # noqa: F401
import filters.gold  # noqa: F401
import filters.instructions  # noqa: F401
import filters.judge  # noqa: F401
import filters.majority  # noqa: F401
import filters.pass_rate  # noqa: F401
import filters.problems  # noqa: F401
import filters.quality  # noqa: F401
import filters.reward  # noqa: F401
import filters.tool_calls  # noqa: F401
from filters import format, math  # noqa: F401
