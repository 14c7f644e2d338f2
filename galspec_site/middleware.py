"""Refuse a request body too large for an upload before Django reads any of it.

Django reads a body only when something asks for ``request.POST``, ``request.FILES`` or ``request.body``
(a view, or CSRF checking), and then reads all of it, spooling an upload over
``FILE_UPLOAD_MAX_MEMORY_SIZE`` to a temporary file; the limits in ``inference.services.search`` and
``inference.services.jobs`` see the file only after that. This middleware, first in ``MIDDLEWARE``, looks at the
Content-Length header alone and answers 413 when it is over ``max_request_bytes()``, so a client cannot
make a web process receive and store gigabytes before being told no.

A body sent without a Content-Length (``Transfer-Encoding: chunked``) is answered 411: Django's WSGI
request reads no body without one (the view would see an empty form and answer a misleading "give a
file"), so there is nothing for an upload handler to count and nothing reaches the disk either way.
(Under ASGI Django reads the whole body before any middleware runs; GalSpec is served by WSGI.)
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status

from galspec_site.api import exception_handler
from galspec_site.throttling import page_throttles

# Room for what comes with one file at the size limit: the multipart framing and the form's other
# fields (a batch's CSV of 10,000 specobjids is about 200 KB).
UPLOAD_OVERHEAD_BYTES = 1024 * 1024


def max_request_bytes() -> int:
    """The largest request body accepted: one spectrum file at ``GALSPEC_MAX_UPLOAD_BYTES`` and its form."""
    return settings.GALSPEC_MAX_UPLOAD_BYTES + UPLOAD_OVERHEAD_BYTES


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class LengthRequired(exceptions.APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_code = "length_required"


def _refusal(request: HttpRequest, error: exceptions.APIException) -> HttpResponse:
    """The API's error format under /api/, a short plain-text page elsewhere."""
    if request.path.startswith("/api/"):
        answer = exception_handler(error, {})
        response = JsonResponse(answer.data, status=answer.status_code)
    else:
        response = HttpResponse(f"{error.detail}\n", status=error.status_code, content_type="text/plain; charset=utf-8")
    # Set here because CommonMiddleware, which would set it, is never reached: the client can read the
    # whole answer without waiting for the connection to close.
    response["Content-Length"] = str(len(response.content))
    return response


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META["CONTENT_LENGTH"])
        except (KeyError, ValueError, TypeError):
            length = None  # Django reads no body without a valid Content-Length
        if length is None and "HTTP_TRANSFER_ENCODING" in request.META:
            return _refusal(
                request,
                LengthRequired(
                    "This request sends its body without a Content-Length header (Transfer-Encoding: chunked), "
                    "which this server does not read: send it with one (browsers, curl -F and Python's requests "
                    "sending a file do)."
                ),
            )
        if length is not None and length > max_request_bytes():
            return _refusal(
                request,
                RequestTooLarge(
                    f"This request is {_megabytes(length)}, over the limit of {_megabytes(max_request_bytes())} "
                    f"(one spectrum file of at most {_megabytes(settings.GALSPEC_MAX_UPLOAD_BYTES)} and the rest "
                    "of the form); none of it was read. Send a smaller file, or split a batch's files over "
                    "several jobs."
                ),
            )
        return self.get_response(request)


class PageThrottleMiddleware:
    """429, with Retry-After, for a page request over its rate (``galspec_site.throttling.page_throttles``); the
    API and static files pass (DRF throttles the API itself). After AuthenticationMiddleware: a person logged
    in is counted as themselves."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/api/") or request.path.startswith(settings.STATIC_URL):
            return self.get_response(request)
        waits = [t.wait() or 0 for t in page_throttles(request) if not t.allow_request(request, None)]
        if waits:
            response = _refusal(request, exceptions.Throttled(wait=max(waits)))
            response["Retry-After"] = str(int(max(waits)) + 1)
            return response
        return self.get_response(request)
