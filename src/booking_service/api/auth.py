from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from booking_service.deps import AccountServiceDep, AuthServiceDep, CurrentUser
from booking_service.errors import CheckedIn, InvalidCredentials, UsernameTaken, WrongPassword
from booking_service.openapi import error_responses
from booking_service.ratelimit import PER_ADDRESS_AUTH, PER_USER_AUTH, rate_limited
from booking_service.schemas.auth import (
    AccountClose,
    LoginRequest,
    RegisterResponse,
    TokenResponse,
    UserCreate,
)
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
@rate_limited(PER_ADDRESS_AUTH)
async def register(
    request: Request, response: Response, body: UserCreate, auth: AuthServiceDep
) -> RegisterResponse:
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
@rate_limited(PER_ADDRESS_AUTH)
async def login(
    request: Request, response: Response, body: LoginRequest, auth: AuthServiceDep
) -> TokenResponse:
    """Exchange a username and password for a JWT. Wrong name and wrong password look alike."""
    issued = await auth.login(body.username, body.password)
    return TokenResponse(
        token=issued.token, access_token=issued.token, expires_in=issued.expires_in
    )


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    response_description="The account is closed.",
    responses=error_responses(WrongPassword(), CheckedIn(), auth=True, validates="body"),
    operation_id="close_account",
    summary="Close your account",
)
@rate_limited(PER_USER_AUTH)
async def close_account(
    request: Request,
    response: Response,
    body: AccountClose,
    user: CurrentUser,
    accounts: AccountServiceDep,
) -> None:
    """Close your account, confirming with your password. Your tickets go to the people in
    line (or back to the pool), you leave every line, and your token stops working. The
    username stays taken, and the history stays on record. A ticket already checked in at the
    door cannot be given back, so an account holding one stays open (409 `checked_in`)."""
    await accounts.close(user.id, body.password)
