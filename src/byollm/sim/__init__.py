"""``byollm.sim``: a local simulator of AWS (STS, IAM, Bedrock control plane and runtime) and of the direct
Anthropic, OpenAI and Google APIs, all on one port, speaking their real wire protocols.

Used by tests, benchmarks and the zero-setup demo. It imports nothing from the rest of byollm.

    from byollm.sim import SimServer
    with SimServer() as sim:          # default world, ephemeral port
        ...  # boto3 clients with endpoint_url=sim.url; admin API at sim.url + "/_sim/..."
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SimServer", "default_world", "load_world"]

if TYPE_CHECKING:
    from byollm.sim.server import SimServer
    from byollm.sim.world import default_world, load_world


def __getattr__(name: str) -> Any:
    """Import lazily so ``import byollm.sim`` stays cheap (no Starlette/botocore until used)."""
    if name == "SimServer":
        from byollm.sim.server import SimServer

        return SimServer
    if name in ("default_world", "load_world"):
        from byollm.sim import world

        return getattr(world, name)
    raise AttributeError(name)
