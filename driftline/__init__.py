"""driftline: real-time ML monitoring on Kafka and ClickHouse."""

from driftline.events import Label, Prediction
from driftline.exceptions import DeliveryError, DriftlineError
from driftline.producer import AsyncProducer, Producer

__all__ = ["AsyncProducer", "DeliveryError", "DriftlineError", "Label", "Prediction", "Producer"]
__version__ = "0.1.0"
