"""Whether a `SECRET_KEY` is fit for production: long, random-looking, and not a
placeholder someone copied from an example.

The production settings refuse to start with a key this module finds a problem in,
so `manage.py check --deploy` and every server process fail the same way. Plain
Python (no Django), because the settings import it before Django is set up.
"""

from __future__ import annotations

import re

MIN_LENGTH = 50
MIN_DISTINCT = 20
# Words that mark a key as written by a person, not drawn at random (a placeholder
# of an example file, a "secret" typed by hand), when they stand as words: between
# separators or at the ends. A random key holds one that way with negligible
# probability (a 4-letter word needs two separators around it: about 1e-9 per key).
PLACEHOLDER_WORDS = (
    "change",
    "example",
    "placeholder",
    "secret",
    "insecure",
    "password",
    "random",
    "generate",
    "replace",
    "your",
    "test",
    "dummy",
)

GENERATE_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(50))"'


def secret_key_problem(key: str) -> str | None:
    """What is wrong with `key` for production, or None when it will do."""
    if not key:
        return f"SECRET_KEY is not set; {GENERATE_HINT}."
    if len(key) < MIN_LENGTH:
        return f"SECRET_KEY is shorter than {MIN_LENGTH} characters; {GENERATE_HINT}."
    for word in PLACEHOLDER_WORDS:
        if re.search(rf"(?<![a-z0-9]){word}(?![a-z0-9])", key, flags=re.IGNORECASE):
            return (
                f"SECRET_KEY looks like a placeholder (it contains '{word}'), not a random "
                f"value; {GENERATE_HINT}."
            )
    if len(set(key)) < MIN_DISTINCT:
        return f"SECRET_KEY has fewer than {MIN_DISTINCT} different characters; {GENERATE_HINT}."
    return None
