"""`make bench`: TaskAPI under load on PostgreSQL. The entry point is tests/bench/run.py.

postgres.py  the database server (a throwaway cluster or TEST_DATABASE_URL) and its session count
target.py    the server under test: started in its own session, sampled, stopped
client.py    the API as the harness uses it: accounts, logins, seeding tasks
load.py      the wrk scenarios (scenario.lua is the wrk side)
deep.py      sorting and paging through 1,000,000 tasks of one user
flood.py     other requests while logins arrive at a fixed rate
report.py    percentiles, the tables, results.json and results.md
"""
