"""The browser login page (`/accounts/login/`): Django's login view.

Its limits are the ones every login shares (`backend.accounts.lockout`): failed
attempts lock a (user name, client address) pair for a while, counted in the cache
all web processes share, and each POST counts against the address's login rate.
"""

from __future__ import annotations

from django.contrib.auth import views as auth_views


class RateLimitedLoginView(auth_views.LoginView):
    """The login form. A locked-out or over-rate attempt answers 429 with this page
    and a message saying how long to wait (set by axes' middleware or
    `LoginThrottleMiddleware`), the same whether the password was right or not."""
