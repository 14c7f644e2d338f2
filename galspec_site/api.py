"""What every API endpoint shares: validated input, pagination and one error format.

Every error answers ``{"error": {"status": 400, "code": "invalid", "message": "...", "fields": {...}}}``:
``message`` is a sentence a person can act on, ``fields`` (only for invalid input) says what is wrong
with each field, and a throttled request also gets ``retry_after`` in seconds.
"""

from rest_framework import exceptions, pagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


def paginated(view, items, serializer_class, **serializer_options) -> Response:
    """One page of ``items`` (a queryset or a list) as ``serializer_class`` writes them, with links to the others."""
    paginator = Pagination()
    page = paginator.paginate_queryset(items, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True, **serializer_options).data)


def validated(serializer_class, request) -> dict:
    """The request's data as ``serializer_class`` validates it; a 400 naming each field at fault otherwise."""
    serializer = serializer_class(data=request.data, context={"request": request})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        message = _first_message(value)
        return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(detail, list):
        return _first_message(detail[0]) if detail else ""
    return str(detail)


def exception_handler(error, context):
    response = drf_exception_handler(error, context)
    if response is None:
        return None  # not an API error: Django's 500 handling and logging
    body = {"status": response.status_code, "code": "error", "message": ""}
    if isinstance(error, exceptions.APIException):
        codes = error.get_codes()
        body["code"] = codes if isinstance(codes, str) else "invalid"
        body["message"] = _first_message(error.detail)
        if isinstance(error, exceptions.ValidationError) and isinstance(error.detail, dict):
            body["fields"] = error.detail
        if isinstance(error, exceptions.Throttled):
            body["retry_after"] = error.wait
    else:  # Http404 and PermissionDenied from Django
        body["code"] = "not_found" if response.status_code == 404 else "permission_denied"
        body["message"] = _first_message(response.data.get("detail", ""))
    response.data = {"error": body}
    return response
