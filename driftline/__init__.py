"""driftline: real-time ML monitoring on Kafka and ClickHouse.

The root is what serving code needs: the producer SDK, the event contract, the errors. Everything
else lives in one package per concern (README "Architecture"); `__all__` is pinned by a test.
"""

from driftline.events import Label, Prediction
from driftline.exceptions import (
    BrokerError,
    BudgetExhausted,
    ConfigError,
    DeliveryError,
    DriftlineError,
    EventError,
    SinkError,
)
from driftline.producer import AsyncProducer, Producer

__all__ = [
    "AsyncProducer",
    "BrokerError",
    "BudgetExhausted",
    "ConfigError",
    "DeliveryError",
    "DriftlineError",
    "EventError",
    "Label",
    "Prediction",
    "Producer",
    "SinkError",
]
__version__ = "0.1.0"
