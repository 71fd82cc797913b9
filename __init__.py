"""stockflow: stream-processing order management on Kafka."""
__version__ = "0.1.0"
