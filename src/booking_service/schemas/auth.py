from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from booking_service.schemas.common import REQUEST_CONFIG, RESPONSE_CONFIG, Message

Username = Annotated[
    str,
    Field(
        min_length=3,
        max_length=50,
        pattern=r"^[A-Za-z0-9._-]{3,50}$",
        description="3-50 letters, digits, `.`, `_` or `-`. Case-insensitive: stored lower-case.",
        examples=["user123"],
    ),
    AfterValidator(str.lower),
]
Password = Annotated[
    str,
    Field(min_length=8, max_length=128, description="8-128 characters.", examples=["password123"]),
]


class UserCreate(BaseModel):
    """A new account."""

    model_config = REQUEST_CONFIG

    username: Username
    password: Password


class LoginRequest(BaseModel):
    """Credentials to exchange for a token."""

    # Looser than registration on purpose: a malformed name is just an unknown user (401).
    model_config = REQUEST_CONFIG

    username: Annotated[
        str, Field(min_length=1, max_length=50, description="Your username.", examples=["user123"])
    ]
    password: Annotated[
        str,
        Field(min_length=1, max_length=128, description="Your password.", examples=["password123"]),
    ]


class RegisterResponse(BaseModel):
    """The account was created."""

    model_config = RESPONSE_CONFIG

    message: str = Field(description="Confirmation.", examples=[Message.REGISTERED])


# A shape example for the docs, signed with no real secret.
EXAMPLE_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."  # noqa: S105
    "eyJzdWIiOiIxIiwibmFtZSI6InVzZXIxMjMiLCJleHAiOjE3NDg4MDcwMDB9."
    "8fJv0n3mQq7yB1cT2Jw4dS5eK6hL9pZ0aXrVbN1uM3o"
)


class TokenResponse(BaseModel):
    """A JWT for the `Authorization: Bearer` header."""

    model_config = RESPONSE_CONFIG

    token: str = Field(
        description="JWT to send as `Authorization: Bearer <token>`.", examples=[EXAMPLE_TOKEN]
    )
    access_token: str = Field(
        description="The same JWT, under its OAuth2 name.", examples=[EXAMPLE_TOKEN]
    )
    token_type: str = Field(default="bearer", description="Always `bearer`.", examples=["bearer"])
    expires_in: int = Field(description="Seconds until the token expires.", examples=[3600])


class AccountClose(BaseModel):
    """Confirmation that you want to close your account."""

    model_config = REQUEST_CONFIG

    password: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            description="Your password, to confirm.",
            examples=["your-password"],
        ),
    ]
