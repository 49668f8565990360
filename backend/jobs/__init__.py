"""Jobs: one row per long operation, the only place progress and outcome are read from."""
