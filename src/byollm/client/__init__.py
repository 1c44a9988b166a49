"""The terminal client: ``byollm login``, ``chat``, ``ask``, ``proxy``, ``doctor --local`` and BYOK keys.

Everything here runs on the engineer's machine. The rules that shape it:

- the user's AWS credentials come from botocore's own provider chain, one frozen snapshot per request, and
  are never written anywhere by byollm (``aws``);
- the gateway token and BYOK keys live only in the OS keyring, or, where none exists, in one 0600 file
  whose path the client states plainly (``tokenstore``);
- the config file, the chat history and the proxy log hold no secret (``config``, ``history``, ``proxy``);
- the CLI modules stay thin: they parse, call one function here, and render.

Modules import their heavy dependencies (botocore, Starlette, Rich) where they are used, so importing the
package costs nothing.
"""

from __future__ import annotations
