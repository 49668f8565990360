"""Sections of `make bench`; each module has `add_arguments(parser)` and `run(args, tmp)`."""
