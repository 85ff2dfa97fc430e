"""schemathesis hooks for scripts/fuzz (loaded through SCHEMATHESIS_HOOKS).

The fuzzer draws Idempotency-Key values from the header's schema and, knowing nothing of
state, sends one value with many different bodies. The API rightly refuses all but the first
with 422 `idempotency_key_reused`, so the requests behind the key would go untested. Each
valid key is therefore tied to its request: a digest of the operation and body is appended
(keeping it valid), so a key comes back only with the same request, which then gets its stored
answer replayed. Negative cases (an invalid key, a missing token, ...) are sent as generated.
The 422 itself is tested in tests/test_idempotency_api.py.

Likewise a sale window whose end is not after its start is refused with 422, a rule between
two fields that JSON Schema cannot state: a positive case naming both ends gets them in order
(tests/test_sale_windows_api.py tests the refusal).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

import schemathesis

KEY_HEADER = "idempotency-key"
VALID_KEY = re.compile(r"[!-~]{1,255}")
SUFFIX_LENGTH = 17  # "~" and 16 hex digits


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    _order_sale_window(case.body)
    headers = case.headers or {}
    for name, key in headers.items():
        if name.lower() != KEY_HEADER or not isinstance(key, str) or not VALID_KEY.fullmatch(key):
            continue
        request = json.dumps([case.operation.label, case.body], sort_keys=True, default=repr)
        digest = hashlib.sha256(request.encode()).hexdigest()[: SUFFIX_LENGTH - 1]
        headers[name] = f"{key[: 255 - SUFFIX_LENGTH]}~{digest}"


def _order_sale_window(body: Any) -> None:
    if not isinstance(body, dict):
        return
    start, end = body.get("sales_start"), body.get("sales_end")
    if not isinstance(start, str) or not isinstance(end, str):
        return
    try:
        in_order = datetime.fromisoformat(start) < datetime.fromisoformat(end)
    except (TypeError, ValueError):  # naive or unreadable: the service says what is wrong
        return
    if not in_order:
        body["sales_start"], body["sales_end"] = end, start
        if start == end or datetime.fromisoformat(start) == datetime.fromisoformat(end):
            del body["sales_end"]
