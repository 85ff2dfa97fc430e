"""Property: whatever arrives in `Authorization`, a real server answers 200 or 401, and the
client's keep-alive connection stays usable.

Hypothesis builds tokens from arbitrary JSON headers and payloads (nested deeply, huge or
non-finite numbers, wrong types, non-ASCII text), signed with the server's secret, another
secret or not at all, and arbitrary header values besides; each goes to `GET /me/bookings` on
one connection of a real `booking-service serve`. An answer other than 200 or 401, a 401
without its `WWW-Authenticate: Bearer`, or a connection the server closed fails the property.
Derandomized and bounded: about 200 requests, a few seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.servers import serve
from tests.support.settings import TEST_SECRET

ROUTE = "/me/bookings"
ISSUER = "booking-service"  # Settings.jwt_issuer's default

FUZZ_SETTINGS = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Target:
    http: httpx.Client
    user_id: int
    username: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp("token-fuzz")
    with (
        serve(workdir, JWT_SECRET=TEST_SECRET, RATE_LIMIT_ENABLED="false") as server,
        # One connection: every request must find it still open.
        httpx.Client(
            base_url=server.base_url,
            timeout=10,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        ) as http,
    ):
        credentials = {"username": "fuzzed", "password": "password123"}
        assert http.post("/register", json=credentials).status_code == 201
        token = http.post("/login", json=credentials).json()["token"]
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert http.get(ROUTE, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        yield Target(http, int(claims["sub"]), claims["name"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(signing_input: str, secret: str) -> str:
    return b64(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())


# JSON values, and raw JSON texts no encoder writes: 1e999, 400-digit integers, deep nesting.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
raw_json = st.one_of(
    json_values.map(json.dumps),  # NaN and Infinity included, as Python writes them
    st.sampled_from(["1e999", "-1e999", "1e308", "9" * 400, "-0", "0.5", '"\\ud800"']),
    st.integers(min_value=1, max_value=6_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=1, max_value=3_000).map(
        lambda depth: '{"a":' * depth + "1" + "}" * depth
    ),
)


@st.composite
def payloads(draw: st.DrawFn, target: Target) -> str:
    """Valid claims for the user, some replaced, dropped or added; or any JSON at all."""
    now = int(time.time())
    claims = {
        "sub": json.dumps(str(target.user_id)),
        "name": json.dumps(target.username),
        "iss": json.dumps(ISSUER),
        "iat": str(now),
        "exp": str(now + 600),
    }
    changed = st.lists(st.sampled_from([*claims, "nbf", "aud", "jti"]), min_size=1, max_size=3)
    for name in draw(st.just([]) | changed):
        replacement = draw(st.none() | raw_json)
        if replacement is None:
            claims.pop(name, None)
        else:
            claims[name] = replacement
    text = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in claims.items()) + "}"
    return draw(st.just(text) | st.just(text) | raw_json)


OUR_HEADER = '{"alg":"HS256","typ":"JWT"}'
headers_json = st.one_of(
    st.just(OUR_HEADER),
    st.just(OUR_HEADER),
    st.sampled_from(["none", "None", "HS512", "RS256", "", "HS256 "]).map(
        lambda alg: json.dumps({"alg": alg, "typ": "JWT"})
    ),
    raw_json,
)


@st.composite
def tokens(draw: st.DrawFn, target: Target) -> str:
    header = b64(draw(headers_json).encode("utf-8", "surrogatepass"))
    payload = b64(draw(payloads(target)).encode("utf-8", "surrogatepass"))
    signing_input = f"{header}.{payload}"
    signature = draw(
        st.sampled_from(["ours", "ours", "another secret", "none", "garbage"]).map(
            lambda how: {
                "ours": sign(signing_input, TEST_SECRET),
                "another secret": sign(signing_input, "another-secret-" + "y" * 40),
                "none": "",
                "garbage": "not-base64!",
            }[how]
        )
    )
    return f"{signing_input}.{signature}"


# What an HTTP client can put in a header value: visible ASCII, Latin-1 beyond it, spaces, tabs.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    | st.just("\t"),
    max_size=300,
)


@st.composite
def authorization(draw: st.DrawFn, target: Target) -> bytes:
    token = draw(tokens(target) | tokens(target) | header_text)
    prefix = draw(st.sampled_from(["Bearer ", "bearer ", "", "Basic ", "Bearer  "]))
    # HTTP trims a header value's surrounding white space: so does the client, before sending.
    return (prefix + token).strip(" \t").encode("latin-1")


def client_address(response: httpx.Response) -> Any:
    return response.extensions["network_stream"].get_extra_info("client_addr")


@pytest.fixture(scope="module")
def connection(target: Target) -> Any:
    """The address of the client's one connection, as it was before the fuzzing."""
    return client_address(target.http.get("/health"))


@FUZZ_SETTINGS
@given(data=st.data())
def test_any_authorization_gets_200_or_401_on_a_live_connection(
    target: Target, connection: Any, data: st.DataObject
) -> None:
    value = data.draw(authorization(target), label="Authorization")
    response = target.http.get(ROUTE, headers={"Authorization": value})
    event(f"answered {response.status_code}")
    assert response.status_code in (200, 401), response.text
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] in {"not_authenticated", "invalid_token"}
    assert response.headers.get("connection", "").lower() != "close"
    assert client_address(response) == connection, "the server closed the connection"
