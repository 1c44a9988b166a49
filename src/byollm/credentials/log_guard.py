"""Keep credential material out of logs written by the libraries we sign with.

botocore logs, at DEBUG, the SigV4 canonical request (which carries ``x-amz-security-token``), the signed
request headers (``Authorization``), and parsed responses (an STS response carries the secret key). Any
operator who turns on debug logging to chase an unrelated problem would write every user's session token
to disk. So byollm caps the whole ``botocore`` logger tree at WARNING whenever it builds services or a
client; nothing botocore says at WARNING or above contains credential values.
"""

from __future__ import annotations

import logging

__all__ = ["silence_credential_debug_logs"]

_NOISY = ("botocore", "boto3", "awscrt")


def silence_credential_debug_logs() -> None:
    for name in _NOISY:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
