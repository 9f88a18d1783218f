"""Client side of the gateway: sign requests (RFC 9421, hmac-sha256) and call it.

>>> from api_router.client import Client
>>> with Client("http://127.0.0.1:8080", key_id="k...", signing_secret="arks_...") as client:
...     reply = client.inference("llama3.2", [{"role": "user", "content": "Hello"}])
...     job = client.submit("llama3.2", [{"role": "user", "content": "A long story"}])
...     story = client.result(job, wait_s=600)  # None if still running by then
"""

from api_router.client.auth import SignatureAuth
from api_router.client.client import Client
from api_router.client.signer import RequestSigner

__all__ = ["Client", "RequestSigner", "SignatureAuth"]
