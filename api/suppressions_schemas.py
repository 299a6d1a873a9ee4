"""`/v1/suppressions` request and response models (HTTP only)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, Field, model_validator

from activities.suppressions import SuppressionOrigin
from api.fields import Address, StrictModel

# Resend's batch calls take 1 to 100 addresses (or ids) at once.
MAX_BATCH = 100
Addresses = Annotated[list[Address], Field(min_length=1, max_length=MAX_BATCH)]
EntryId = Annotated[str, Field(min_length=1, max_length=100)]


class SuppressionCreate(StrictModel):
    email: Address


class SuppressionsAdd(StrictModel):
    """`POST /suppressions/batch/add` (and `/v1/suppressions/batch/add`)."""

    emails: Addresses


class SuppressionsRemove(StrictModel):
    """`POST /suppressions/batch/remove`: `emails` or `ids`, not both."""

    emails: Addresses | None = None
    ids: Annotated[list[EntryId], Field(min_length=1, max_length=MAX_BATCH)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.emails is None) == (self.ids is None):
            raise ValueError("give `emails` or `ids`, not both and not neither")
        return self

    @property
    def keys(self) -> list[str]:
        return [str(e) for e in self.emails] if self.emails is not None else list(self.ids or [])


class SuppressionOut(BaseModel):
    id: str
    email: str
    origin: SuppressionOrigin
    source_id: str | None = None
    created_at: str


class SuppressionPageOut(BaseModel):
    items: list[SuppressionOut]
    has_more: bool


class SuppressionsOut(BaseModel):
    """The entries a batch call added (or found listed) or removed, in the order given."""

    items: list[SuppressionOut]
