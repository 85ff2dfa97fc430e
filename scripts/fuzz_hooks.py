"""schemathesis hooks for scripts/fuzz (loaded through SCHEMATHESIS_HOOKS).

The fuzzer draws Idempotency-Key values from the header's schema and, knowing nothing of
state, sends one value with many different bodies. The API rightly refuses all but the first
with 422 `idempotency_key_reused`, so the requests behind the key would go untested. Each
valid key is therefore tied to its request: a digest of the operation and body is appended
(keeping it valid), so a key comes back only with the same request, which then gets its stored
answer replayed. Negative cases (an invalid key, a missing token, ...) are sent as generated.
The 422 itself is tested in tests/test_idempotency_api.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import schemathesis

KEY_HEADER = "idempotency-key"
VALID_KEY = re.compile(r"[!-~]{1,255}")
SUFFIX_LENGTH = 17  # "~" and 16 hex digits


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    headers = case.headers or {}
    for name, key in headers.items():
        if name.lower() != KEY_HEADER or not isinstance(key, str) or not VALID_KEY.fullmatch(key):
            continue
        request = json.dumps([case.operation.label, case.body], sort_keys=True, default=repr)
        digest = hashlib.sha256(request.encode()).hexdigest()[: SUFFIX_LENGTH - 1]
        headers[name] = f"{key[: 255 - SUFFIX_LENGTH]}~{digest}"
