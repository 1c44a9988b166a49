"""Admin API fixtures live in ``support.admin_cast`` so other test folders (the CLI's) can share them."""

from support.admin_cast import cast, server_settings

__all__ = ["cast", "server_settings"]
