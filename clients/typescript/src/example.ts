import createClient from "openapi-fetch";
import type { paths } from "./booking-service.js"; // written by openapi-typescript

const baseUrl = process.env["BOOKING_SERVICE_URL"] ?? "http://127.0.0.1:8000";
const anonymous = createClient<paths>({ baseUrl });
const credentials = { username: "user123", password: "password123" };
await anonymous.POST("/register", { body: credentials });
const login = await anonymous.POST("/login", { body: credentials });
if (login.error) throw new Error(login.error.message);
const headers = { Authorization: `Bearer ${login.data.token}` };
const api = createClient<paths>({ baseUrl, headers }); // sent on every call

const created = await api.POST("/initialize", { body: { name: "Concert 2025", tickets: 100 } });
if (created.error) throw new Error(created.error.message);
const event = { eventId: created.data.eventId };
const { data, error, response } = await api.POST("/book", { body: event });
if (error) {
  console.log("refused:", response.status, error.code, error.message); // 4xx/5xx, one shape for all
} else if (data.status === "confirmed") {
  console.log("booked", data.bookingId); // 201
} else {
  console.log("in line at", data.position); // 202: only a place in line has a position
}

console.log((await api.GET("/status/{eventId}", { params: { path: event } })).data);
console.log((await api.GET("/me/bookings")).data?.items);
await api.POST("/cancel", { body: event });
