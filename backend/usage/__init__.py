"""Usage: an append-only record of every API call by a user, kept for the long run."""
