"""Throttles beyond the API's own: password guessing on both login paths, and every page, since an anonymous
search page runs the encoder on an upload.

DRF throttles the API (``DEFAULT_THROTTLE_CLASSES``); ``galspec_site.middleware.PageThrottleMiddleware``
applies the same classes and rates to the pages, so one setting governs both. A client is known by its
address: REMOTE_ADDR, or the address that the ``GALSPEC_NUM_PROXIES`` proxies in front of the site saw
(DRF's ``NUM_PROXIES``). With none set, ``X-Forwarded-For`` is never read: a client cannot choose its identity.
"""

from django.urls import reverse
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle


class LoginRateThrottle(SimpleRateThrottle):
    """Attempts at a password (the login pages, the API's token endpoint) per client address, whatever
    account they name: the ``login`` rate."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PollRateThrottle(SimpleRateThrottle):
    """A progress bar's polls (a request a second while work runs) per person or address: the ``poll`` rate."""

    scope = "poll"

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


def page_throttles(request) -> list[SimpleRateThrottle]:
    """The throttles a page request counts against: a password sent to a login page against ``login``, a
    progress bar's poll against ``poll``, any other page against the API's ``anon`` and ``user`` rates."""
    if request.method == "POST" and request.path in (reverse("login"), reverse("admin:login")):
        return [LoginRateThrottle()]
    if request.path.endswith("/progress/"):
        return [PollRateThrottle()]
    return [AnonRateThrottle(), UserRateThrottle()]
