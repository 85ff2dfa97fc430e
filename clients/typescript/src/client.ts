// Typed clients for the flow: openapi-fetch over the types openapi-typescript generated from
// openapi.json, with every answer recorded for the suite to check against the same document.
import assert from "node:assert/strict";
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./booking-service.js";

export type Schemas = components["schemas"];
export type ErrorBody = Schemas["ErrorResponse"];
export type Api = Client<paths>;

/** One answer as the server sent it (the body as text, untouched by any parsing). */
export interface Answer {
  method: string;
  path: string;
  status: number;
  content_type: string;
  body: string;
}

/** Keeps every answer any client of this run received, in order. */
export class Recorder {
  readonly answers: Answer[] = [];

  readonly middleware: Middleware = {
    onResponse: async ({ request, response }) => {
      this.answers.push({
        method: request.method,
        path: new URL(request.url).pathname,
        status: response.status,
        content_type: response.headers.get("content-type") ?? "",
        // A clone, so that openapi-fetch still reads the body itself.
        body: await response.clone().text(),
      });
      return undefined;
    },
  };
}

export class Server {
  constructor(
    readonly baseUrl: string,
    readonly recorder: Recorder,
  ) {}

  /** A client that sends `Authorization: Bearer <token>` on every call when given a token. */
  client(token?: string): Api {
    const headers = token === undefined ? {} : { Authorization: `Bearer ${token}` };
    const api = createClient<paths>({ baseUrl: this.baseUrl, headers });
    api.use(this.recorder.middleware);
    return api;
  }

  /** Register `username` and log in; the client of the new user. */
  async signUp(username: string, password = "password123"): Promise<Api> {
    const anonymous = this.client();
    const credentials = { username, password };
    const created = expectData(await anonymous.POST("/register", { body: credentials }), 201);
    assert.equal(created.message, "Registration Successful");
    const issued = expectData(await anonymous.POST("/login", { body: credentials }), 200);
    assert.equal(issued.token_type, "bearer");
    assert.equal(issued.access_token, issued.token);
    return this.client(issued.token);
  }
}

/** What every openapi-fetch call resolves to: typed data or a typed error, and the response. */
interface Result<Data, Error> {
  data?: Data;
  error?: Error;
  response: Response;
}

/** The typed body of a success with this status. */
export function expectData<Data, Error>(result: Result<Data, Error>, status: number): Data {
  const { data, error, response } = result;
  assert.equal(response.status, status, `${response.url}: ${JSON.stringify(error)}`);
  assert.ok(data !== undefined, `${response.url}: no body`);
  return data;
}

/** The typed error body of a refusal with this status and code. */
export function expectError<Data, Error extends ErrorBody>(
  result: Result<Data, Error>,
  status: number,
  code: string,
): Error {
  const { data, error, response } = result;
  assert.equal(response.status, status, `${response.url}: ${JSON.stringify(data)}`);
  assert.ok(error !== undefined, `${response.url}: no error body`);
  assert.equal(error.code, code, error.message);
  assert.ok(error.message.length > 0);
  return error;
}
