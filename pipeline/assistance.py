"""Medical-assistance (医疗救助) rules of a policy version: categories, deductibles, ratios, caps.

Placeholder: the full typed schema and the calculator are being written.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Assistance(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
