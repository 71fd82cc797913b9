from ..errors import StockflowError


class TableWriteError(StockflowError):
    """A table write inside an agent batch with no event bound to take its
    partition from (tables/context.py)."""
