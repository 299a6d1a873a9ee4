"""`/v1/suppressions` request and response models (HTTP only)."""

from __future__ import annotations

from pydantic import BaseModel

from activities.suppressions import SuppressionOrigin
from api.fields import Address, StrictModel


class SuppressionCreate(StrictModel):
    email: Address


class SuppressionOut(BaseModel):
    id: str
    email: str
    origin: SuppressionOrigin
    source_id: str | None = None
    created_at: str


class SuppressionPageOut(BaseModel):
    items: list[SuppressionOut]
    has_more: bool
