"""schemathesis hooks: the project's own checks."""
import schemathesis


@schemathesis.check
def problem_json_for_client_errors(ctx, response, case):
    """Every 4xx answer is an RFC 9457 problem document naming what to change."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])
        if isinstance(content_type, list):
            content_type = content_type[0] if content_type else ""
        assert content_type.startswith("application/problem+json"), (
            f"{response.status_code} answered with content type {content_type!r}"
        )
        body = response.json()
        assert body.get("status") == response.status_code and body.get("detail"), body
