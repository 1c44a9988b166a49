"""The web admin panel, served by ``byollm serve`` under ``/admin``."""
