"""Real answers checked against the OpenAPI document that every generated client is built from.

A generated client's types say what each operation answers, and they come from `openapi.json`:
an answer the document does not describe (a status it does not list, a field missing, extra or
of another type, an error code none of its examples names) is one a typed client misreads. The
Python and TypeScript client tests record every answer their clients receive and check them
here, so neither client's types can drift from the server.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from openapi_schema_validator import OAS31Validator


@dataclass(frozen=True)
class Answer:
    """One answer as a client received it."""

    method: str
    path: str  # as requested, without the query
    status: int
    content_type: str  # the header as sent; "" when there is none
    body: str

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        return cls(
            method=response.request.method,
            path=response.request.url.path,
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            body=response.text,
        )

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Answer:
        return cls(**{name: item[name] for name in cls.__dataclass_fields__})

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    pattern: re.Pattern[str]
    responses: dict[str, Any]


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def _closed(schema: Any) -> Any:
    """The schema with every object closed to fields it does not list: a field the server sends
    but the document does not name is drift too (a client's type does not know it)."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


class Contract:
    """What the document promises each operation answers."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.operations = [
            Operation(
                operation["operationId"],
                method.upper(),
                _path_pattern(path),
                operation["responses"],
            )
            for path, methods in document["paths"].items()
            for method, operation in methods.items()
        ]
        self._components = _closed(copy.deepcopy(document["components"]))

    def operation_of(self, answer: Answer) -> Operation | None:
        for operation in self.operations:
            if operation.method == answer.method and operation.pattern.fullmatch(answer.path):
                return operation
        return None

    def problems(self, answer: Answer) -> list[str]:
        """What is wrong with this answer by the document; empty when nothing is."""
        operation = self.operation_of(answer)
        if operation is None:
            return [f"{answer}: no operation in the document"]
        where = f"{answer} ({operation.operation_id})"
        response = operation.responses.get(str(answer.status))
        if response is None:
            return [f"{where}: status not documented ({sorted(operation.responses)})"]
        content = response.get("content", {})
        if not content:
            return [] if answer.body == "" else [f"{where}: documented without a body"]
        media_type = answer.content_type.split(";")[0].strip()
        if media_type not in content:
            return [f"{where}: {media_type or 'no'} content, documented {sorted(content)}"]
        media = content[media_type]
        if media_type != "application/json" or "schema" not in media:
            return []
        return self._body_problems(where, json.loads(answer.body), media)

    def _body_problems(self, where: str, body: Any, media: dict[str, Any]) -> list[str]:
        validator = OAS31Validator(
            {**media["schema"], "components": self._components},
            format_checker=OAS31Validator.FORMAT_CHECKER,
        )
        problems = [
            f"{where}: {'/'.join(map(str, error.absolute_path)) or 'body'}: {error.message}"
            for error in validator.iter_errors(body)
        ]
        codes = {example["value"]["code"] for example in media.get("examples", {}).values()}
        if codes and not problems and isinstance(body, dict) and body["code"] not in codes:
            problems.append(f"{where}: code {body['code']!r} is not among {sorted(codes)}")
        return problems

    def check(self, answers: Iterable[Answer]) -> None:
        """Fail, naming every problem, unless each answer is one the document describes."""
        problems = [problem for answer in answers for problem in self.problems(answer)]
        assert not problems, "answers the document does not describe:\n" + "\n".join(problems)

    def unseen_successes(self, answers: Iterable[Answer]) -> list[str]:
        """Each documented success (operation and 2xx status) that no answer showed."""
        seen = set()
        for answer in answers:
            operation = self.operation_of(answer)
            if operation is not None:
                seen.add((operation.operation_id, str(answer.status)))
        return sorted(
            f"{operation.operation_id} {status}"
            for operation in self.operations
            for status in operation.responses
            if status.startswith("2") and (operation.operation_id, status) not in seen
        )
