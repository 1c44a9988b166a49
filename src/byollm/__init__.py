"""byollm: run AI agents on models hosted in your own cloud account.

The package is layered (see docs/architecture.md); importing it does no work.
"""

__version__ = "0.1.0"
