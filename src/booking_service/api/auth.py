from __future__ import annotations

from fastapi import APIRouter, status

from booking_service.deps import AuthServiceDep
from booking_service.errors import InvalidCredentials, UsernameTaken
from booking_service.openapi import error_responses
from booking_service.schemas.auth import LoginRequest, RegisterResponse, TokenResponse, UserCreate
from booking_service.schemas.common import Message

router = APIRouter(tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=RegisterResponse,
    response_description="The account was created; log in to get a token.",
    responses=error_responses(UsernameTaken(), auth=False, validates="body"),
    operation_id="register",
    summary="Create an account",
)
async def register(body: UserCreate, auth: AuthServiceDep) -> RegisterResponse:
    """Register a username and password. Usernames are case-insensitive."""
    await auth.register(body.username, body.password)
    return RegisterResponse(message=Message.REGISTERED)


@router.post(
    "/login",
    response_model=TokenResponse,
    response_description="A token for the `Authorization: Bearer` header.",
    responses=error_responses(InvalidCredentials(), auth=False, validates="body"),
    operation_id="login",
    summary="Get a token",
)
async def login(body: LoginRequest, auth: AuthServiceDep) -> TokenResponse:
    """Exchange a username and password for a JWT. Wrong name and wrong password look alike."""
    issued = await auth.login(body.username, body.password)
    return TokenResponse(
        token=issued.token, access_token=issued.token, expires_in=issued.expires_in
    )
