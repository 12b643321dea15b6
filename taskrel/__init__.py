"""taskrel: which tasks should learn together, and how much of a network should they share."""

from taskrel.affinity import Affinity, Cost
from taskrel.errors import RunFailed, TaskrelError

__version__ = "0.1.0"
__all__ = ["Affinity", "Cost", "TaskrelError", "RunFailed", "__version__"]
