// The whole flow through the typed client, against the server at BOOKING_SERVICE_URL.
//
// Each step is one story with its own users and events, so a new route gets a new step (or a
// few lines in the step it belongs to). Every answer received is written to ANSWERS_FILE, and
// the suite checks each against openapi.json, the document these types were generated from:
// an answer that does not match its type fails the run (tests/test_typescript_client.py).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { type Api, expectData, expectError, Recorder, Server } from "./client.js";

type Step = (server: Server) => Promise<void>;

const UNKNOWN_EVENT = 987654;

async function operations(server: Server): Promise<void> {
  const anonymous = server.client();
  const live = expectData(await anonymous.GET("/health"), 200);
  assert.equal(live.status, "ok");
  const ready = expectData(await anonymous.GET("/ready"), 200);
  assert.equal(ready.status, "ready");
  assert.equal(ready.checks["database"], "ok");
  const metrics = expectData(await anonymous.GET("/metrics", { parseAs: "text" }), 200);
  assert.match(metrics, /^# HELP /m);
}

async function accounts(server: Server): Promise<void> {
  const anonymous = server.client();
  await server.signUp("alice");
  const taken = await anonymous.POST("/register", {
    body: { username: "alice", password: "password123" },
  });
  expectError(taken, 409, "username_taken");
  const wrong = await anonymous.POST("/login", {
    body: { username: "alice", password: "not-her-password" },
  });
  expectError(wrong, 401, "invalid_credentials");
  const stranger = server.client("not-a-token");
  const refused = await stranger.GET("/me/bookings");
  expectError(refused, 401, "invalid_token");
  assert.equal(refused.response.headers.get("www-authenticate"), "Bearer");
  const short = await anonymous.POST("/register", { body: { username: "al", password: "x" } });
  const invalid = expectError(short, 422, "validation_error");
  assert.deepEqual(invalid.details?.map((detail) => detail.loc), [
    ["body", "username"],
    ["body", "password"],
  ]);
}

/** Book, wait in line, cancel: the ticket goes to the first in line at once. */
async function waitingList(server: Server): Promise<void> {
  const bob = await server.signUp("bob");
  const carol = await server.signUp("carol");
  // The README's body: the optional fields left out.
  const created = expectData(
    await bob.POST("/initialize", { body: { name: "Concert 2025", tickets: 1 } }),
    201,
  );
  assert.equal(created.message, "Event Created");
  const event = { eventId: created.eventId };

  const booked = expectData(await bob.POST("/book", { body: event }), 201);
  assert.equal(booked.status, "confirmed");
  const waiting = expectData(await carol.POST("/book", { body: event }), 202);
  // 201 and 202 are one union, told apart by `status`; only the waitlisted answer has a place.
  assert.ok(waiting.status === "waitlisted", `booked instead: ${JSON.stringify(waiting)}`);
  assert.equal(waiting.position, 1);
  assert.equal(waiting.message, "No tickets available, you are added to waiting list");
  expectError(await carol.POST("/book", { body: event }), 409, "already_booked");

  const full = expectData(await bob.GET("/status/{eventId}", { params: { path: event } }), 200);
  assert.deepEqual(
    [full.available_tickets, full.total_ticket_booked, full.waiting_list_count, full.state],
    [0, 1, 1, "open"],
  );

  const cancelled = expectData(await bob.POST("/cancel", { body: event }), 200);
  assert.equal(cancelled.outcome, "reassigned");
  assert.equal(
    cancelled.message,
    "Booking canceled, ticket assigned to another user on the waiting list",
  );
  const after = expectData(await carol.GET("/status/{eventId}", { params: { path: event } }), 200);
  assert.deepEqual([after.available_tickets, after.total_ticket_booked, after.waiting_list_count], [
    0, 1, 0,
  ]);

  const mine = expectData(await carol.GET("/me/bookings"), 200);
  const [promoted, ...others] = mine.items;
  assert.ok(promoted !== undefined);
  assert.deepEqual(others, []);
  assert.equal(promoted.eventId, event.eventId);
  assert.equal(promoted.status, "confirmed");
  assert.equal(promoted.position, null);
  assert.ok(promoted.promoted_at !== null && !Number.isNaN(Date.parse(promoted.promoted_at)));
  assert.deepEqual(expectData(await bob.GET("/me/bookings"), 200).items, []);

  const read = expectData(await carol.GET("/events/{eventId}", { params: { path: event } }), 200);
  assert.deepEqual([read.name, read.capacity, read.available_tickets, read.waitlist_mode], [
    "Concert 2025",
    1,
    0,
    "instant",
  ]);
  const page = expectData(await carol.GET("/events", { params: { query: { limit: 10 } } }), 200);
  assert.ok(page.items.some((item) => item.eventId === event.eventId));
  assert.equal(page.limit, 10);

  const unknown = await carol.POST("/book", { body: { eventId: UNKNOWN_EVENT } });
  const missing = expectError(unknown, 404, "event_not_found");
  assert.equal(missing.message, "Event not found");
  assert.equal(missing.details, null);
  const tooBig = await carol.GET("/events", { params: { query: { limit: 1000 } } });
  assert.deepEqual(expectError(tooBig, 422, "validation_error").details?.[0]?.loc, [
    "query",
    "limit",
  ]);
}

/** A party: booked whole, waits whole behind free tickets, gives part back. */
async function parties(server: Server): Promise<void> {
  const host = await server.signUp("party-host");
  const guest = await server.signUp("party-guest");
  const body = { name: "Party night", tickets: 4, max_per_user: 3 };
  const created = expectData(await host.POST("/initialize", { body }), 201);
  const event = { eventId: created.eventId };
  const booked = expectData(await host.POST("/book", { body: { ...event, quantity: 3 } }), 201);
  assert.equal(booked.quantity, 3);
  const waiting = expectData(await guest.POST("/book", { body: { ...event, quantity: 2 } }), 202);
  assert.ok(waiting.status === "waitlisted");
  assert.deepEqual([waiting.position, waiting.quantity], [1, 2]);
  const status = expectData(await host.GET("/status/{eventId}", { params: { path: event } }), 200);
  assert.deepEqual(
    [status.available_tickets, status.waiting_list_tickets, status.first_in_line_needs],
    [1, 2, 1],
  );
  const part = expectData(await host.POST("/cancel", { body: { ...event, quantity: 1 } }), 200);
  assert.deepEqual([part.outcome, part.released_tickets, part.quantity], ["reassigned", 1, 2]);
  const [mine] = expectData(await guest.GET("/me/bookings"), 200).items;
  assert.deepEqual([mine?.status, mine?.quantity], ["confirmed", 2]);
  const over = await host.POST("/cancel", { body: { ...event, quantity: 3 } });
  expectError(over, 422, "validation_error");
}

/** A retried request with the same Idempotency-Key gets the stored answer, marked replayed. */
async function idempotentRetries(server: Server): Promise<void> {
  const dana = await server.signUp("dana");
  const once = { header: { "Idempotency-Key": "create-club-night" } };
  const body = { name: "Club night", tickets: 5 };
  const first = await dana.POST("/initialize", { params: once, body });
  const again = await dana.POST("/initialize", { params: once, body });
  assert.deepEqual(expectData(again, 201), expectData(first, 201));
  assert.equal(first.response.headers.get("idempotent-replayed"), null);
  assert.equal(again.response.headers.get("idempotent-replayed"), "true");
  const other = await dana.POST("/initialize", { params: once, body: { ...body, tickets: 6 } });
  expectError(other, 422, "idempotency_key_reused");
}

/** An event in `offer` mode: a freed ticket is offered in turn, declined, accepted, lapsed. */
async function offers(server: Server): Promise<void> {
  const [owner, ann, ben, cat] = await signUpAll(server, ["owner", "ann", "ben", "cat"]);
  const created = expectData(
    await owner.POST("/initialize", {
      body: { name: "Gig", tickets: 1, waitlist_mode: "offer", offer_seconds: 600 },
    }),
    201,
  );
  const event = { eventId: created.eventId };
  expectData(await ann.POST("/book", { body: event }), 201);
  expectData(await ben.POST("/book", { body: event }), 202);
  expectData(await cat.POST("/book", { body: event }), 202);
  assert.equal(expectData(await ann.POST("/cancel", { body: event }), 200).outcome, "offered");

  const [offer] = expectData(await ben.GET("/me/bookings"), 200).items;
  assert.ok(offer !== undefined);
  assert.equal(offer.status, "offered");
  assert.ok(offer.offer_expires_at !== null && Date.parse(offer.offer_expires_at) > Date.now());
  const declined = expectData(await ben.POST("/offers/decline", { body: event }), 200);
  assert.equal(declined.message, "Offer declined");
  const accepted = expectData(await cat.POST("/offers/accept", { body: event }), 200);
  assert.equal(accepted.status, "confirmed");
  expectError(await ben.POST("/offers/accept", { body: event }), 404, "offer_not_found");
  const story = expectData(await ben.GET("/me/history"), 200);
  assert.deepEqual(
    story.items.map((entry) => entry.action).reverse(),
    ["waitlisted", "offered", "declined"],
  );

  // A one-second offer left to lapse: answering it late is 410.
  const brief = expectData(
    await owner.POST("/initialize", {
      body: { name: "Flash", tickets: 1, waitlist_mode: "offer", offer_seconds: 1 },
    }),
    201,
  );
  const flash = { eventId: brief.eventId };
  expectData(await ann.POST("/book", { body: flash }), 201);
  expectData(await ben.POST("/book", { body: flash }), 202);
  expectData(await ann.POST("/cancel", { body: flash }), 200);
  const lapsing = expectData(await ben.GET("/me/bookings"), 200).items.find(
    (item) => item.eventId === flash.eventId,
  );
  assert.ok(lapsing?.offer_expires_at);
  await sleep(Math.max(0, Date.parse(lapsing.offer_expires_at) - Date.now()) + 200);
  expectError(await ben.POST("/offers/accept", { body: flash }), 410, "offer_expired");
}

/** The owner changes the event, reads its bookings and history, closes and cancels it. */
async function organizer(server: Server): Promise<void> {
  const [host, fan, late, guest] = await signUpAll(server, ["host", "fan", "late", "guest"]);
  const created = expectData(
    await host.POST("/initialize", { body: { name: "Festival", tickets: 1 } }),
    201,
  );
  const event = { eventId: created.eventId };
  const path = { params: { path: event } };
  expectData(await fan.POST("/book", { body: event }), 201);
  expectData(await late.POST("/book", { body: event }), 202);

  // One more ticket goes to the person in line in the same transaction.
  const grown = expectData(
    await host.PATCH("/events/{eventId}", { ...path, body: { tickets: 2, offer_seconds: 300 } }),
    200,
  );
  assert.deepEqual(
    [grown.capacity, grown.available_tickets, grown.waiting_list_count, grown.offer_seconds],
    [2, 0, 0, 300],
  );
  const notYours = await guest.PATCH("/events/{eventId}", { ...path, body: { tickets: 5 } });
  expectError(notYours, 403, "not_event_owner");
  const belowHeld = await host.PATCH("/events/{eventId}", { ...path, body: { tickets: 1 } });
  expectError(belowHeld, 409, "capacity_below_held");

  const holders = expectData(
    await host.GET("/events/{eventId}/bookings", {
      params: { path: event, query: { status: "confirmed" } },
    }),
    200,
  );
  assert.deepEqual(
    holders.items.map((item) => [item.username, item.status]),
    [
      ["fan", "confirmed"],
      ["late", "confirmed"],
    ],
  );
  const history = expectData(
    await host.GET("/events/{eventId}/history", { params: { path: event, query: { limit: 100 } } }),
    200,
  );
  assert.deepEqual(
    history.items.map((entry) => [entry.username, entry.action]).reverse(),
    [
      ["fan", "booked"],
      ["late", "waitlisted"],
      ["late", "promoted"],
    ],
  );

  const closed = expectData(await host.POST("/events/{eventId}/close", path), 200);
  assert.equal(closed.state, "closed");
  expectError(await guest.POST("/book", { body: event }), 409, "event_closed");
  const ended = expectData(await host.POST("/events/{eventId}/cancel", path), 200);
  assert.deepEqual(
    [ended.released_tickets, ended.released_offers, ended.released_places],
    [2, 0, 0],
  );
  const status = expectData(await guest.GET("/status/{eventId}", path), 200);
  assert.equal(status.state, "cancelled");
  const gone = await host.GET("/events/{eventId}", { params: { path: { eventId: UNKNOWN_EVENT } } });
  expectError(gone, 404, "event_not_found");
}

/** Sales not yet open; a ticket given to another user; the door checks codes in once. */
async function ticketsAndDoor(server: Server): Promise<void> {
  const [seller, giver, taker] = await signUpAll(server, ["seller", "giver", "taker"]);
  const opensAt = new Date(Date.now() + 3600 * 1000).toISOString();
  const later = expectData(
    await seller.POST("/initialize", {
      body: { name: "Later", tickets: 5, sales_start: opensAt },
    }),
    201,
  );
  const laterPath = { params: { path: { eventId: later.eventId } } };
  const upcoming = expectData(await giver.GET("/events/{eventId}", laterPath), 200);
  assert.equal(upcoming.state, "upcoming");
  const early = await giver.POST("/book", { body: { eventId: later.eventId } });
  const notYet = expectError(early, 409, "sales_not_started");
  assert.ok(notYet.sales_start != null && Date.parse(notYet.sales_start) > Date.now());
  assert.equal(Date.parse(notYet.sales_start), Date.parse(opensAt));
  assert.ok(Number(early.response.headers.get("retry-after")) > 3500);

  const created = expectData(
    await seller.POST("/initialize", { body: { name: "Now", tickets: 1 } }),
    201,
  );
  const event = { eventId: created.eventId };
  const path = { params: { path: event } };
  expectData(await giver.POST("/book", { body: event }), 201);
  const [given] = expectData(await giver.GET("/me/bookings"), 200).items;
  assert.ok(given?.ticket_code);

  const moved = expectData(
    await giver.POST("/tickets/transfer", { body: { ...event, toUsername: "taker" } }),
    200,
  );
  assert.deepEqual([moved.eventId, moved.toUsername, moved.quantity], [event.eventId, "taker", 1]);
  assert.deepEqual(expectData(await giver.GET("/me/bookings"), 200).items, []);
  const [received, ...others] = expectData(await taker.GET("/me/bookings"), 200).items;
  assert.deepEqual(others, []);
  assert.ok(received?.ticket_code);
  assert.equal(received.bookingId, moved.bookingId);
  assert.notEqual(received.ticket_code, given.ticket_code);

  const voided = await seller.POST("/events/{eventId}/check-in", {
    ...path,
    body: { code: given.ticket_code },
  });
  expectError(voided, 404, "ticket_not_found");
  const door = expectData(
    await seller.POST("/events/{eventId}/check-in", {
      ...path,
      body: { code: received.ticket_code },
    }),
    200,
  );
  assert.deepEqual([door.username, door.quantity, door.bookingId], ["taker", 1, moved.bookingId]);
  assert.ok(!Number.isNaN(Date.parse(door.checked_in_at)));
  const again = await seller.POST("/events/{eventId}/check-in", {
    ...path,
    body: { code: received.ticket_code },
  });
  const twice = expectError(again, 409, "already_checked_in");
  assert.ok(twice.checked_in_at != null);
  assert.equal(Date.parse(twice.checked_in_at), Date.parse(door.checked_in_at));
  const notTheOwner = await taker.POST("/events/{eventId}/check-in", {
    ...path,
    body: { code: received.ticket_code },
  });
  expectError(notTheOwner, 403, "not_event_owner");
  const back = await taker.POST("/tickets/transfer", { body: { ...event, toUsername: "giver" } });
  expectError(back, 409, "checked_in");
}

/** Closing an account needs its password; its token is refused afterwards. */
async function closeAccount(server: Server): Promise<void> {
  const leaving = await server.signUp("leaving");
  const wrong = await leaving.DELETE("/me", { body: { password: "not-the-password" } });
  expectError(wrong, 403, "wrong_password");
  const closed = await leaving.DELETE("/me", { body: { password: "password123" } });
  assert.equal(closed.response.status, 204);
  expectError(await leaving.GET("/me/bookings"), 401, "invalid_token");
}

/** One client per name, in the same order. */
async function signUpAll<const Names extends readonly string[]>(
  server: Server,
  names: Names,
): Promise<{ [Index in keyof Names]: Api }> {
  const clients = await Promise.all(names.map((name) => server.signUp(name)));
  return clients as { [Index in keyof Names]: Api };
}

const STEPS: ReadonlyArray<readonly [string, Step]> = [
  ["operations: health, ready, metrics", operations],
  ["accounts: register, log in, refusals", accounts],
  ["waiting list: book, wait, cancel, status, my bookings", waitingList],
  ["parties: all or nothing, the line, partial cancel", parties],
  ["idempotent retries", idempotentRetries],
  ["offers: declined, accepted, lapsed", offers],
  ["organizer: change, bookings, history, close, cancel", organizer],
  ["tickets: sale window, transfer, check-in", ticketsAndDoor],
  ["account closed", closeAccount],
];

async function main(): Promise<void> {
  const baseUrl = process.env["BOOKING_SERVICE_URL"] ?? "http://127.0.0.1:8000";
  const answersFile = process.env["ANSWERS_FILE"];
  const recorder = new Recorder();
  const server = new Server(baseUrl, recorder);
  try {
    for (const [name, step] of STEPS) {
      await step(server);
      console.log(`ok: ${name}`);
    }
    console.log(`flow done: ${STEPS.length} steps`);
  } finally {
    // Written even when a step failed, so the suite can show what the server said.
    if (answersFile !== undefined) {
      writeFileSync(answersFile, JSON.stringify(recorder.answers, null, 1));
    }
  }
}

await main();
