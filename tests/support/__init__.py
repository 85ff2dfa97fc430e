"""Helpers shared by the tests, one module per job; import from the module that does the job.

environment  the MariaDB, Redis and programs the suite runs against; skipping where one is missing
settings     Settings and environments for the service under test
databases    fresh migrated databases (SQLite, MariaDB), wiped between tests
apps         the app in process, a client for it, and the operations it publishes
api          acting through the API: users and their tokens, and the calls tests make
checks       looking behind the API: nothing changed, the rows as stored, offers ended as told
servers      `booking-service serve` as a real process
peers        what the service talks to, run by the test: a private Redis, a webhook receiver
timing       waiting for a moment or for a condition
"""
