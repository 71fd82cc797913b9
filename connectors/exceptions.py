"""Errors of the connectors (the edges: webhooks, file imports)."""
from __future__ import annotations

from ..errors import StockflowError


class MappingError(StockflowError):
    """An external document that cannot become a contract event.

    ``fields`` lists what is wrong in the same shape as the HTTP 422 body of
    ``POST /orders`` (``{"field", "error"}``), named by the external format's
    own field paths so the sender can find them.
    """

    def __init__(self, fields: list[dict]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{f['field']}: {f['error']}" for f in fields[:10]))
