"""The one root of every error stockflow raises on purpose.

Business rejections are events (a dead letter, a rejected allocation), not
exceptions; these classes are for things a caller must stop on.
"""


class StockflowError(Exception):
    """Root of stockflow's own errors."""


class ConfigError(StockflowError):
    """Settings that cannot work (bad bootstrap address, bad port)."""
