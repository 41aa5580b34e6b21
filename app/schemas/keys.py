"""API keys as the API takes and shows them: the key itself only in the answer to create."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ScopeName = Literal["read", "check", "admin"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="What the key is for.")
    scope: ScopeName = Field(description="read < check (jobs, checks) < admin (everything).")


class KeyPublic(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scope: ScopeName
    created_at: datetime
    last_used_at: datetime | None = Field(description="Within a minute; null if never used.")
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key: shown this once, kept only hashed.")


class KeysPublic(BaseModel):
    keys: list[KeyPublic]
