from ..errors import StockflowError


class DomainError(StockflowError):
    """A domain rule refused an input; ``reason`` becomes the dead-letter reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
