// Type declarations for the InfraPilot SDK for Node.js (hand-written: the addon is built
// without the napi CLI). test/declarations.test.js checks every export appears here.

export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };
/** A document: a value, or the same as JSON text. */
export type Document = JSONValue;
export type Action =
  | 'create' | 'start' | 'restart' | 'stop' | 'delete' | 'exec' | 'update' | 'create_proxy' | 'update_proxy';
export type Decision = 'allow' | 'warn' | 'block';

/** One problem, located by a JSON pointer into the document as given. */
export interface Diagnostic {
  severity: 'error' | 'warning';
  code: string;
  policy: string | null;
  pointer: string;
  message: string;
}
export interface Evidence { path: string; actual: JSONValue | null }
export interface Violation {
  policy_id: string;
  policy_name: string;
  action: 'block' | 'warn' | 'audit';
  message: string;
  evidence: Evidence[];
}
/** The answer for one resource. */
export interface Evaluation { decision: Decision; violations: Violation[]; diagnostics: Diagnostic[] }
export interface ServiceEvaluation extends Evaluation { service: string; resource: { [key: string]: JSONValue } }
export interface ComposeEvaluation { decision: Decision; services: ServiceEvaluation[] }
export interface Validation { valid: boolean; diagnostics: Diagnostic[] }
export interface TemplateInfo {
  name: string;
  description: string;
  action: 'block' | 'warn' | 'audit';
  parameters: { [key: string]: JSONValue };
  policy: { [key: string]: JSONValue };
}
export interface RenderedFile { path: string; contents: string }
export interface RenderedHost { files: RenderedFile[]; required_files: string[] }
export interface AuditBreak { seq: number; kind: string; message: string }
export interface AuditReport {
  ok: boolean;
  org: string;
  entries: number;
  checkpoints: number;
  head: string | null;
  verified_through: number;
  broken: AuditBreak | null;
  export_key_matches: boolean | null;
}
export interface EnrollmentTokenInfo { version: number; ca_fingerprint: string; public_id: string }
/** Evaluation context; every key optional. `now` is unix seconds (default: the current time). */
export interface Context { agent_labels?: { [key: string]: string }; environment?: string | null; now?: number | null }

/** A compiled policy set: compile once, evaluate many resources. */
export class PolicyEngine {
  constructor(policies: Document);
  evaluate(resource: Document, action?: Action, context?: Context | string | null): Evaluation;
  /** `evaluate` with JSON text in and out (what `evaluate` uses underneath). */
  evaluateJson(resource: string, action?: Action | null, context?: string | null): string;
  evaluateCompose(composeYaml: string, action?: Action, context?: Context | string | null): ComposeEvaluation;
  policies(): { [key: string]: JSONValue }[];
  readonly size: number;
}

export function validatePolicy(document: Document): Validation;
export function listTemplates(): TemplateInfo[];
export function evaluateCompose(composeYaml: string, policies: Document, context?: Context | string | null): ComposeEvaluation;
export function composeResources(composeYaml: string): { [service: string]: { [key: string]: JSONValue } };
export function validateProxyHost(host: Document): void;
export function renderProxyHost(host: Document, layout?: Document | null): RenderedHost;
export function defaultLayout(): { [key: string]: JSONValue };
export function verifyAuditExport(exported: Document, publicKey: string): AuditReport;
export function inspectEnrollmentToken(token: string): EnrollmentTokenInfo;

export interface PageOptions { limit?: number; cursor?: string }
export interface Page<T = { [key: string]: JSONValue }> { items: T[]; next_cursor?: string | null }
export interface SetupRequest {
  setup_code: string;
  email: string;
  name: string;
  password: string;
  organization_name: string;
  organization_slug?: string;
}
export interface AuditQuery {
  action?: string; actor?: string; resource_kind?: string; outcome?: string;
  from?: string; to?: string; limit?: number; cursor?: string;
}
type Obj = { [key: string]: JSONValue };

/** A client for one InfraPilot server; every call returns a Promise. */
export class Client {
  constructor(baseUrl: string, token?: string | null, organization?: string | null);
  readonly baseUrl: string;
  setToken(token: string | null): void;
  setOrganization(organization: string | null): void;
  setupStatus(): Promise<{ setup_required: boolean; edition: string }>;
  setup(request: SetupRequest): Promise<Obj>;
  login(email: string, password: string, organizationId?: string | null): Promise<Obj>;
  loginMfa(mfaToken: string, code: string, organizationId?: string | null): Promise<Obj>;
  me(): Promise<Obj>;
  listOrganizations(options?: PageOptions | null): Promise<Page>;
  createOrganization(name: string, slug?: string | null): Promise<Obj>;
  organization(): Promise<Obj>;
  listMembers(options?: PageOptions | null): Promise<Page>;
  inviteMember(email: string, role: string): Promise<Obj>;
  updateMember(userId: string, role: string): Promise<Obj>;
  removeMember(userId: string): Promise<void>;
  listAgents(options?: PageOptions | null): Promise<Page>;
  listContainers(agentId: string): Promise<Obj[]>;
  containerAction(agentId: string, container: string, action: 'start' | 'stop' | 'restart'): Promise<Obj>;
  listProxyHosts(options?: PageOptions | null): Promise<Page>;
  createProxyHost(agentId: string, host: Obj): Promise<Obj>;
  deleteProxyHost(id: string): Promise<void>;
  listPolicies(options?: PageOptions | null): Promise<Page>;
  deletePolicy(id: string): Promise<void>;
  listViolations(filters?: Obj | null): Promise<Page>;
  queryLogs(filters?: Obj | null): Promise<Page>;
  listEvents(filters?: Obj | null): Promise<Page>;
  listAlerts(filters?: Obj | null): Promise<Page>;
  listAlertChannels(): Promise<Obj[]>;
  createAlertChannel(name: string, config: Obj): Promise<Obj>;
  testAlertChannel(id: string): Promise<Obj>;
  deleteAlertChannel(id: string): Promise<void>;
  listAlertRules(): Promise<Obj[]>;
  createAlertRule(rule: Obj, channels?: string[] | null): Promise<Obj>;
  deleteAlertRule(id: string): Promise<void>;
  createPolicyFromTemplate(template: Obj): Promise<Obj>;
  listApiTokens(options?: PageOptions | null, all?: boolean | null): Promise<Page>;
  createApiToken(name: string, role?: string | null, expiresInDays?: number | null): Promise<Obj>;
  revokeApiToken(id: string): Promise<void>;
  listEnrollmentTokens(options?: PageOptions | null): Promise<Page>;
  createEnrollmentToken(
    name: string, labels?: { [key: string]: string } | null, expiresInSecs?: number | null, maxUses?: number | null,
  ): Promise<Obj>;
  getEnrollmentToken(id: string): Promise<Obj>;
  revokeEnrollmentToken(id: string): Promise<Obj>;
  deleteEnrollmentToken(id: string): Promise<void>;
  listAudit(query?: AuditQuery | null): Promise<Page>;
  verifyAudit(): Promise<Obj>;
  exportAudit(): Promise<Obj>;
  verifyAuditOffline(publicKey?: string | null): Promise<AuditReport>;
}

/** Base class of every InfraPilot error. */
export class InfraPilotError extends Error {
  readonly kind: string;
  readonly details: { [key: string]: JSONValue };
}
export class InvalidInputError extends InfraPilotError { readonly field: string }
export class InvalidJsonError extends InvalidInputError {}
export class PolicyError extends InfraPilotError { readonly diagnostics: Diagnostic[] }
export class ComposeError extends InfraPilotError {
  readonly field: string | null; readonly line: number | null; readonly column: number | null;
}
export class EnrollmentTokenError extends InfraPilotError {}
export class InvalidKeyError extends InfraPilotError {}
export class ApiError extends InfraPilotError {
  readonly status: number;
  readonly problem_type: string;
  readonly title: string;
  readonly detail: string;
  readonly errors: { field: string; reason: string }[];
  readonly request_id: string | null;
  readonly retry_after: number | null;
}
export class TransportError extends InfraPilotError {}
export class UnexpectedResponseError extends InfraPilotError { readonly status: number }
