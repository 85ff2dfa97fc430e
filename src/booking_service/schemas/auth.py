from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from booking_service.schemas.common import REQUEST_CONFIG, Message

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
    model_config = REQUEST_CONFIG

    username: Username
    password: Password


class LoginRequest(BaseModel):
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
    message: str = Field(description="Confirmation.", examples=[Message.REGISTERED])


class TokenResponse(BaseModel):
    token: str = Field(description="JWT to send as `Authorization: Bearer <token>`.")
    access_token: str = Field(description="The same JWT, under its OAuth2 name.")
    token_type: str = Field(default="bearer", description="Always `bearer`.", examples=["bearer"])
    expires_in: int = Field(description="Seconds until the token expires.", examples=[3600])


class AccountClose(BaseModel):
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
