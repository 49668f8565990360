"""gunicorn settings for the web nodes: threads for I/O-bound API calls, a timeout
long enough for a large upload to be copied into the store."""

bind = "0.0.0.0:8000"
workers = 3
threads = 4
timeout = 300
graceful_timeout = 30
accesslog = "-"
forwarded_allow_ips = "*"
