"""Dataset readers and the prepared-split artifact."""

from pagstore.data.prepared import PreparedDataError, PreparedSplit, load_split

__all__ = ["PreparedDataError", "PreparedSplit", "load_split"]
