"""Errors of accounts and their tokens."""

from __future__ import annotations

from booking_service.errors.base import Conflict, Forbidden, NotAuthenticated


class AccountGone(NotAuthenticated):
    """The token is valid, but its account was closed (or never existed)."""

    code = "invalid_token"
    message = "This account no longer exists"


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    message = "Invalid username or password"


class WrongPassword(Forbidden):
    code = "wrong_password"
    message = "The password does not match"


class UsernameTaken(Conflict):
    code = "username_taken"
    message = "Username already exists"
