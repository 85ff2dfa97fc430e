"""`booking-service bench`: honest load against a running server, then the invariants checked.

command     the command line, and the run's exit code
options     the command line's values checked, with each scenario's defaults
measure     one run: reach, prepare, (floor), load, summarize, check
seed        a run's preparation: users in bulk in the database, tokens, events via the API
http        the lean keep-alive HTTP/1.1 client
scenarios   hot, spread, churn, read, ceiling, opening, floor: what each prepares and expects
workloads   what each connection sends next, and what the client learns from the answers
load        the connections of one process, and the start line
processes   the same load split over several processes
records     how each request's result is kept
progress    the line printed every second
invariants  the booking rules, straight from the database (shared with the tests)
checks      the rules plus "every answer agrees with the database", after a run
report      the summary (and JSON) and its text, with the ratio to the floor
chart       the PNG (chart_panels: its plots)
ceiling     a trivial responder, to measure the generator alone
floor       a trivial FastAPI route on uvicorn (floor_app), to measure the stack alone
server_watch the server's CPU and memory from /proc
delay_proxy a TCP proxy adding a round trip (Redis "1 ms away" on loopback)
"""
