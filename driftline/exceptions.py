"""Every error driftline raises on purpose derives from one root.

DriftlineError
├── ConfigError          bad settings, flags or monitor spec (raised at start-up)
├── BrokerError          the embedded broker could not start or be found
├── EventError           an event or message that does not follow contract v1
├── SinkError            ClickHouse refused or could not be reached
├── BudgetExhausted      a private (DP) release would overspend its privacy budget
└── DeliveryError        the producer SDK could not deliver one or more events
"""

from __future__ import annotations


class DriftlineError(Exception):
    """Root of all driftline errors."""


class ConfigError(DriftlineError):
    """A setting, flag or spec is invalid; the message says how to fix it."""


class BrokerError(DriftlineError):
    """The embedded broker could not be found or started."""


class EventError(DriftlineError):
    """An event does not follow the event contract.

    `code` is a stable machine-readable reason (e.g. ``missing_field``); the message
    names the field and the problem.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class SinkError(DriftlineError):
    """ClickHouse could not store a batch."""


class BudgetExhausted(DriftlineError):
    """A differentially private release would spend more privacy than the budget has left."""


class DeliveryError(DriftlineError):
    """One or more events could not be delivered to Kafka."""

    def __init__(self, message: str, failures: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.failures = failures or []
