"""Tables of cloud agent runs (runs, their events). Registered on ``tables.Base``'s metadata."""

from __future__ import annotations
