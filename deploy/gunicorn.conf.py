"""gunicorn settings for the web nodes: threads for I/O-bound API calls, a timeout
long enough for a large upload to be copied into the store."""

bind = "0.0.0.0:8000"
workers = 3
threads = 4
timeout = 300
graceful_timeout = 30
# Idle connections are kept 10 s (gunicorn's default is 2 s): a script that reuses its
# connection after a short pause must not find it closed under a POST, which clients
# do not resend. Behind the nginx of this folder, nginx's own upstream keep-alive applies.
keepalive = 10
accesslog = "-"
forwarded_allow_ips = "*"
