"""The browser UI: server-rendered page shells plus plain ES modules that talk to /api/."""
