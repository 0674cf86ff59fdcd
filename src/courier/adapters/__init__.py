"""Delivery adapters: one Protocol, one method, an outcome back."""

from courier.adapters.base import AttemptOutcome, AttemptResult, DeliveryAdapter, DeliveryRequest

__all__ = ["AttemptOutcome", "AttemptResult", "DeliveryAdapter", "DeliveryRequest"]
