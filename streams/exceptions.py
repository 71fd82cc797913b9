from ..errors import StockflowError


class DecodeError(StockflowError):
    """A record that does not meet the wire contract.

    ``reason`` is short and machine-readable (it becomes the dead letter's
    ``error`` and a metric label), ``detail`` is for the operator.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
