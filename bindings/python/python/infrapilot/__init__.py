"""InfraPilot SDK for Python.

The policy engine, docker-compose checks, the nginx renderer, offline audit verification,
enrollment-token inspection, and a client for the InfraPilot HTTP API, all backed by the
same Rust code as the server (``infrapilot-sdk``).

Every value goes in and comes out as plain JSON-shaped Python data (dict, list, str, int,
float, bool, None); JSON text (a ``str``) is accepted wherever a document is expected.
Every error is an :class:`InfraPilotError`.
"""

from ._infrapilot import (
    ApiError,
    Client,
    ComposeError,
    EnrollmentTokenError,
    InfraPilotError,
    InvalidInputError,
    InvalidJsonError,
    InvalidKeyError,
    PolicyEngine,
    PolicyError,
    TransportError,
    UnexpectedResponseError,
    compose_resources,
    default_layout,
    evaluate_compose,
    inspect_enrollment_token,
    list_templates,
    render_proxy_host,
    validate_policy,
    validate_proxy_host,
    verify_audit_export,
)

__all__ = [
    "ApiError",
    "Client",
    "ComposeError",
    "EnrollmentTokenError",
    "InfraPilotError",
    "InvalidInputError",
    "InvalidJsonError",
    "InvalidKeyError",
    "PolicyEngine",
    "PolicyError",
    "TransportError",
    "UnexpectedResponseError",
    "compose_resources",
    "default_layout",
    "evaluate_compose",
    "inspect_enrollment_token",
    "list_templates",
    "render_proxy_host",
    "validate_policy",
    "validate_proxy_host",
    "verify_audit_export",
]
