"""Field types shared by the request and response models."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from booking_service.limits import MAX_OFFER_SECONDS

# Largest id the API accepts: 2**53 - 1, the largest integer every JSON parser holds exactly
# (RFC 7493). Up at BIGINT's 2**63 - 1, a client's 9223372036854775999 and that bound are the
# same double, so a JSON Schema validator calls it in range while ours refuses it.
MAX_DB_ID = 2**53 - 1


def json_integer(value: Any) -> Any:
    """JSON has one number type: 12 and 12.0 are the same integer, but true and "12" are not."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Constraints go in Field(strict=True, ...) next to the validator, not on a nested Annotated
# type: that way the schema publishes them as `minimum`/`maximum`.
EventId = Annotated[
    int,
    Field(strict=True, ge=1, le=MAX_DB_ID, description="The event's id.", examples=[1]),
    BeforeValidator(json_integer),
]

TicketCount = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=2_000_000_000,
        # The app publishes the configured MAX_TICKETS_PER_EVENT as `maximum` (openapi.py).
        description=(
            "Number of tickets: a whole number from 1 up to the server's MAX_TICKETS_PER_EVENT "
            "(1,000,000 unless configured), which is published as this field's `maximum`."
        ),
        examples=[100],
    ),
    BeforeValidator(json_integer),
]


def _field_title(name: str, _info: Any) -> str:
    # From the Python name: the camelCase aliases would make titles like "Eventid".
    return name.replace("_", " ").capitalize()


def _defaults_in_descriptions(schema: JsonDict) -> None:
    """A request field's default is said in its description, never as a `default` keyword.

    To the server, a default in a request body means "assumed when left out", and that is what
    the document must tell every generator. But generators read `default` their own ways:
    openapi-typescript (by default) makes such a field *required* in a schema reached through
    `$ref`, so `{"name": ..., "tickets": 100}` no longer compiles; openapi-python-client (like
    some openapi-generator targets) writes the value into the client, which then sends it every
    time and freezes today's default into every client built. Without the keyword every
    generator agrees on what is true: the field is optional, left out unless set, and the server
    applies its own default. Responses are unaffected (RESPONSE_CONFIG lists their fields as
    required), and so are query parameters: every generator keeps a parameter with a default
    optional (openapi-typescript exempts them by name).
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return
    for prop in properties.values():
        if not isinstance(prop, dict) or "default" not in prop:
            continue
        default = prop.pop("default")
        if default is not None:  # a null default is just "left out", said by `required`
            said = f"Default: `{json.dumps(default)}`."
            prop["description"] = f"{prop.get('description', '')} {said}".lstrip()


# Request bodies: unknown fields are errors, a string is never coerced into a number, and
# defaults are published for people, not as `default` keywords (see above).
REQUEST_CONFIG = ConfigDict(
    extra="forbid",
    strict=True,
    field_title_generator=_field_title,
    json_schema_extra=_defaults_in_descriptions,
)
# Response bodies always carry every field (null when empty), so the schema marks them all
# required: generated clients then type `position` as `int | None`, not "maybe absent".
RESPONSE_CONFIG = ConfigDict(
    json_schema_serialization_defaults_required=True,
    field_title_generator=_field_title,
    # Built from services' results by attribute (`model_validate`), or by field name.
    from_attributes=True,
    validate_by_name=True,
    validate_by_alias=True,
)


def example_of(model: type[BaseModel]) -> dict[str, Any]:
    """A response as JSON, made of its fields' first examples: for a list's `examples`."""
    return {
        field.serialization_alias or name: (field.examples or [None])[0]
        for name, field in model.model_fields.items()
    }


OfferSeconds = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_OFFER_SECONDS,
        description=(
            "In `offer` mode, how long the first in line has to accept a freed ticket, in "
            "seconds (1 second to 7 days; 900 is 15 minutes)."
        ),
        examples=[900],
    ),
    BeforeValidator(json_integer),
]

# Years a sale window may name, written in the text itself: inside what every database
# stores, and far enough from the edges that converting any zone to UTC stays a valid date.
# Said as a pattern so that the published schema and the validator agree exactly.
SALE_YEAR_PATTERN = r"^(?:[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9])-"
SALE_YEARS = "2000 to 9998"


def _rfc3339_text(value: Any) -> Any:
    """Only the JSON string the schema promises: lax parsing would also take a number (as
    Unix time), which the published `format: date-time` does not allow."""
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time string")
    if not re.match(SALE_YEAR_PATTERN, value):
        raise PydanticCustomError(
            "datetime_out_of_range", f"Input should be a time in the years {SALE_YEARS}"
        )
    return value


def _in_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


SaleMoment = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    Field(
        # Not strict: strict mode refuses every string for a datetime outside JSON parsing.
        strict=False,
        description=(
            f"RFC 3339 date and time with a zone (`Z` or an offset), in the years {SALE_YEARS}; "
            "stored and shown in UTC."
        ),
        examples=["2025-06-01T18:00:00Z"],
        json_schema_extra={"pattern": SALE_YEAR_PATTERN},
    ),
    AfterValidator(_in_utc),
]

# Examples shared by several models.
EXAMPLE_TIME = "2025-06-01T18:30:00.123456Z"


class Message:
    """The original service's messages, kept word for word for its clients."""

    REGISTERED = "Registration Successful"
    EVENT_CREATED = "Event Created"
    BOOKED = "Ticket booked"
    WAITLISTED = "No tickets available, you are added to waiting list"
    CANCELLED_REASSIGNED = "Booking canceled, ticket assigned to another user on the waiting list"
    CANCELLED_RELEASED = "Booking canceled, ticket now available to other users"
    LEFT_LINE = "You left the waiting list"
    # Beyond the original service.
    CANCELLED_OFFERED = "Booking canceled, ticket offered to the next user on the waiting list"
    OFFER_DECLINED = "Offer declined"
    EVENT_CANCELLED = "Event cancelled"
    TRANSFERRED = "Ticket transferred"
    CHECKED_IN = "Ticket checked in"
