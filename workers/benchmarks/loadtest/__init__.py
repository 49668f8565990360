"""The load test: a throw-away lab on loopback, 50 locust users for 5 minutes.

`python -m workers.benchmarks.loadtest` (`make loadtest`); see `runner.py` for the
set-up and `locustfile.py` for what the users do.
"""
