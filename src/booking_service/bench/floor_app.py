"""The floor: the cheapest answer FastAPI on uvicorn gives, for `booking-service bench`.

One route and nothing else (no middleware, no database, no body to validate), served by the same
uvicorn, loop and HTTP parser as `booking-service serve`. What a server with the same workers
reaches against the same load, on the same machine in the same minutes, is what the service's
own figures are divided by: a ratio that holds from one machine to the next, where absolute
figures do not. It lives in a module of its own so that uvicorn's workers import nothing else.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/")
async def floor() -> dict[str, bool]:
    return {"ok": True}
