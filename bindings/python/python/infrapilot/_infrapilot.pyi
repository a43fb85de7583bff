"""Type stubs for the InfraPilot extension module."""

from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, TypedDict, Union

JSON = Union[None, bool, int, float, str, List["JSON"], Dict[str, "JSON"]]
Document = Union[str, Mapping[str, Any], Sequence[Any]]
Action = Literal[
    "create", "start", "restart", "stop", "delete", "exec", "update", "create_proxy", "update_proxy"
]
Decision = Literal["allow", "warn", "block"]

class Diagnostic(TypedDict):
    severity: Literal["error", "warning"]
    code: str
    policy: Optional[str]
    pointer: str
    message: str

class Evidence(TypedDict):
    path: str
    actual: JSON

class Violation(TypedDict):
    policy_id: str
    policy_name: str
    action: Literal["block", "warn", "audit"]
    message: str
    evidence: List[Evidence]

class Evaluation(TypedDict):
    decision: Decision
    violations: List[Violation]
    diagnostics: List[Diagnostic]

class ServiceEvaluation(Evaluation):
    service: str
    resource: Dict[str, Any]

class ComposeEvaluation(TypedDict):
    decision: Decision
    services: List[ServiceEvaluation]

class Validation(TypedDict):
    valid: bool
    diagnostics: List[Diagnostic]

class TemplateInfo(TypedDict):
    name: str
    description: str
    action: Literal["block", "warn", "audit"]
    parameters: Dict[str, Any]
    policy: Dict[str, Any]

class RenderedFile(TypedDict):
    path: str
    contents: str

class RenderedHost(TypedDict):
    files: List[RenderedFile]
    required_files: List[str]

class AuditBreak(TypedDict):
    seq: int
    kind: str
    message: str

class AuditReport(TypedDict):
    ok: bool
    org: str
    entries: int
    checkpoints: int
    head: Optional[str]
    verified_through: int
    broken: Optional[AuditBreak]
    export_key_matches: Optional[bool]

class EnrollmentTokenInfo(TypedDict):
    version: int
    ca_fingerprint: str
    public_id: str

class InfraPilotError(Exception):
    """Base class of every InfraPilot error."""

    kind: str
    message: str
    details: Dict[str, Any]

class InvalidInputError(InfraPilotError):
    field: str

class InvalidJsonError(InvalidInputError): ...

class PolicyError(InfraPilotError):
    diagnostics: List[Diagnostic]

class ComposeError(InfraPilotError):
    field: Optional[str]
    line: Optional[int]
    column: Optional[int]

class EnrollmentTokenError(InfraPilotError): ...
class InvalidKeyError(InfraPilotError): ...

class ApiError(InfraPilotError):
    status: int
    problem_type: str
    title: str
    detail: str
    errors: List[Dict[str, str]]
    request_id: Optional[str]
    retry_after: Optional[int]

class TransportError(InfraPilotError): ...

class UnexpectedResponseError(InfraPilotError):
    status: int

class PolicyEngine:
    """A compiled policy set: compile once, evaluate many resources."""

    def __init__(self, policies: Document) -> None: ...
    def evaluate(
        self, resource: Document, action: Action = "create", context: Optional[Document] = None
    ) -> Evaluation: ...
    def evaluate_compose(
        self, compose_yaml: str, action: Action = "create", context: Optional[Document] = None
    ) -> ComposeEvaluation: ...
    def policies(self) -> List[Dict[str, Any]]: ...
    def __len__(self) -> int: ...

def validate_policy(document: Document) -> Validation: ...
def list_templates() -> List[TemplateInfo]: ...
def evaluate_compose(
    compose_yaml: str, policies: Document, context: Optional[Document] = None
) -> ComposeEvaluation: ...
def compose_resources(compose_yaml: str) -> Dict[str, Dict[str, Any]]: ...
def validate_proxy_host(host: Document) -> None: ...
def render_proxy_host(host: Document, layout: Optional[Document] = None) -> RenderedHost: ...
def default_layout() -> Dict[str, Any]: ...
def verify_audit_export(export: Document, public_key: str) -> AuditReport: ...
def inspect_enrollment_token(token: str) -> EnrollmentTokenInfo: ...

class Page(TypedDict):
    items: List[Dict[str, Any]]
    next_cursor: Optional[str]

class Client:
    """A synchronous client for one InfraPilot server (calls release the GIL)."""

    base_url: str

    def __init__(
        self, base_url: str, token: Optional[str] = None, organization: Optional[str] = None
    ) -> None: ...
    def set_token(self, token: Optional[str]) -> None: ...
    def set_organization(self, organization: Optional[str]) -> None: ...
    def setup_status(self) -> Dict[str, Any]: ...
    def setup(
        self,
        setup_code: str,
        email: str,
        name: str,
        password: str,
        organization_name: str,
        organization_slug: Optional[str] = None,
    ) -> Dict[str, Any]: ...
    def login(
        self, email: str, password: str, organization_id: Optional[str] = None
    ) -> Dict[str, Any]: ...
    def login_mfa(
        self, mfa_token: str, code: str, organization_id: Optional[str] = None
    ) -> Dict[str, Any]: ...
    def me(self) -> Dict[str, Any]: ...
    def list_organizations(self, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page: ...
    def create_organization(self, name: str, slug: Optional[str] = None) -> Dict[str, Any]: ...
    def organization(self) -> Dict[str, Any]: ...
    def list_members(self, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page: ...
    def invite_member(self, email: str, role: str) -> Dict[str, Any]: ...
    def update_member(self, user_id: str, role: str) -> Dict[str, Any]: ...
    def remove_member(self, user_id: str) -> None: ...
    def list_agents(self, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page: ...
    def list_containers(self, agent_id: str) -> List[Dict[str, Any]]: ...
    def container_action(self, agent_id: str, container: str, action: str) -> Dict[str, Any]: ...
    def list_proxy_hosts(self, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page: ...
    def create_proxy_host(self, agent_id: str, host: Dict[str, Any]) -> Dict[str, Any]: ...
    def delete_proxy_host(self, id: str) -> None: ...
    def list_policies(self, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page: ...
    def delete_policy(self, id: str) -> None: ...
    def list_violations(self, **filters: Any) -> Page: ...
    def query_logs(self, **filters: Any) -> Page: ...
    def list_events(self, **filters: Any) -> Page: ...
    def list_alerts(self, **filters: Any) -> Page: ...
    def list_alert_channels(self) -> List[Dict[str, Any]]: ...
    def create_alert_channel(self, name: str, config: Dict[str, Any]) -> Dict[str, Any]: ...
    def test_alert_channel(self, id: str) -> Dict[str, Any]: ...
    def delete_alert_channel(self, id: str) -> None: ...
    def list_alert_rules(self) -> List[Dict[str, Any]]: ...
    def create_alert_rule(self, rule: Dict[str, Any], channels: List[str] = ...) -> Dict[str, Any]: ...
    def delete_alert_rule(self, id: str) -> None: ...
    def create_policy_from_template(self, template: Dict[str, Any]) -> Dict[str, Any]: ...
    def list_api_tokens(
        self, limit: Optional[int] = None, cursor: Optional[str] = None, all: bool = False
    ) -> Page: ...
    def create_api_token(
        self, name: str, role: Optional[str] = None, expires_in_days: Optional[int] = None
    ) -> Dict[str, Any]: ...
    def revoke_api_token(self, id: str) -> None: ...
    def list_enrollment_tokens(self, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page: ...
    def create_enrollment_token(
        self,
        name: str,
        labels: Optional[Mapping[str, str]] = None,
        expires_in_secs: Optional[int] = None,
        max_uses: Optional[int] = None,
    ) -> Dict[str, Any]: ...
    def get_enrollment_token(self, id: str) -> Dict[str, Any]: ...
    def revoke_enrollment_token(self, id: str) -> Dict[str, Any]: ...
    def delete_enrollment_token(self, id: str) -> None: ...
    def list_audit(
        self,
        action: Optional[str] = None,
        actor: Optional[str] = None,
        resource_kind: Optional[str] = None,
        outcome: Optional[str] = None,
        from_time: Optional[str] = None,
        to_time: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Page: ...
    def verify_audit(self) -> Dict[str, Any]: ...
    def export_audit(self) -> Dict[str, Any]: ...
    def verify_audit_offline(self, public_key: Optional[str] = None) -> AuditReport: ...
