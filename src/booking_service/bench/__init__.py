"""`booking-service bench`: honest load against a running server, then the invariants checked.

seed        a run's preparation: users in bulk in the database, tokens, events via the API
http        the lean keep-alive HTTP/1.1 client
scenarios   hot, spread, churn, read, ceiling: what each connection sends next
load        the connections of one process, and the start line
processes   the same load split over several processes
records     how each request's result is kept
progress    the line printed every second
invariants  the booking rules, straight from the database (shared with the tests)
checks      the rules plus "every answer agrees with the database", after a run
report      the summary (and JSON) and its text
chart       the PNG
ceiling     a trivial responder, to measure the generator alone
delay_proxy a TCP proxy adding a round trip (Redis "1 ms away" on loopback)
command     the command line
"""
