//! The application: shared state, the router, and the tower layers every request passes.
//!
//! Cross-cutting behaviour lives in layers, outermost first: request id (set and propagated),
//! tracing, panic catching, CORS, compression, then the request context (the request id for
//! error bodies, the timeout, and the problem+json guarantee: any error a layer produces
//! becomes a problem document), the body-size limit, authentication with organization
//! context, and per-route metrics. Handlers only validate input, check the role and call the store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use infrapilot_core::identity::{JwtKey, PasswordParams, RefreshPolicy};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::agents::{AgentHub, RelayStreams, RelayWaiters};
use crate::api;
use crate::ca::InstanceCa;
use crate::config::Config;
use crate::error::{AppError, REQUEST_ID};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::store::Store;

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    store: Store,
    keys: Keys,
    ca: InstanceCa,
    hub: AgentHub,
    relay_waiters: RelayWaiters,
    relay_streams: Arc<RelayStreams>,
    jwt: JwtKey,
    password_params: PasswordParams,
    refresh: RefreshPolicy,
    metrics: Metrics,
    log_tail: crate::logs::LogTail,
    outbound: crate::outbound::Outbound,
    started: Instant,
}

impl AppState {
    /// Builds the state from a configuration, an opened store and the keys.
    pub fn new(
        config: Config,
        store: Store,
        keys: Keys,
        ca: InstanceCa,
        password_params: PasswordParams,
    ) -> Result<AppState, AppError> {
        let jwt = JwtKey::new(keys.jwt()).map_err(AppError::from)?;
        let refresh = RefreshPolicy {
            absolute_lifetime_secs: config
                .refresh_token_ttl
                .as_secs()
                .try_into()
                .unwrap_or(i64::MAX),
            ..RefreshPolicy::default()
        };
        let hub = AgentHub::new(crate::util::new_id().simple().to_string(), config.heartbeat);
        let outbound = crate::outbound::Outbound::new(config.outbound.clone())
            .map_err(|e| AppError::internal(format!("the outbound HTTP client: {e}")))?;
        Ok(AppState(Arc::new(Inner {
            hub,
            relay_waiters: RelayWaiters::default(),
            relay_streams: Arc::default(),
            config,
            store,
            keys,
            ca,
            jwt,
            password_params,
            refresh,
            metrics: Metrics::default(),
            log_tail: crate::logs::LogTail::default(),
            outbound,
            started: Instant::now(),
        })))
    }

    /// The client for calls to addresses a tenant chose.
    pub fn outbound(&self) -> &crate::outbound::Outbound {
        &self.0.outbound
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The derived keys.
    pub fn keys(&self) -> &Keys {
        &self.0.keys
    }

    /// The instance CA.
    pub fn ca(&self) -> &InstanceCa {
        &self.0.ca
    }

    /// The agent sessions this replica holds.
    pub fn hub(&self) -> &AgentHub {
        &self.0.hub
    }

    /// Commands this replica relayed to another, waiting for their answers.
    pub fn relay_waiters(&self) -> &RelayWaiters {
        &self.0.relay_waiters
    }

    /// Streamed commands relayed to or from another replica.
    pub fn relay_streams(&self) -> &Arc<RelayStreams> {
        &self.0.relay_streams
    }

    /// The access-token key.
    pub fn jwt(&self) -> &JwtKey {
        &self.0.jwt
    }

    /// The argon2id parameters for new password hashes.
    pub fn password_params(&self) -> &PasswordParams {
        &self.0.password_params
    }

    /// The refresh-token policy.
    pub fn refresh_policy(&self) -> &RefreshPolicy {
        &self.0.refresh
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The live-tail fan-out of the lines this replica ingests.
    pub fn log_tail(&self) -> &crate::logs::LogTail {
        &self.0.log_tail
    }

    /// How long the server has run.
    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }
}

/// The OpenAPI document's frame; paths come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "InfraPilot API",
        description = "The InfraPilot control plane: organizations, identity, agents, Docker, proxies, policies, audit.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecurityAddon),
    // Ids that appear only in paths and queries, which register no schema of their own.
    components(schemas(infrapilot_core::ids::AlertRuleId, infrapilot_core::ids::AccessListId)),
    tags(
        (name = "system", description = "Health, readiness, metrics"),
        (name = "setup", description = "First-run setup"),
        (name = "auth", description = "Sign-in, sessions, MFA"),
        (name = "users", description = "Accounts"),
        (name = "organizations", description = "Organizations, members, invitations"),
        (name = "tokens", description = "Personal API tokens and agent enrollment tokens"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "agents", description = "Enrolled agents (Docker hosts) and the installer"),
        (name = "docker", description = "Containers, logs, exec, stacks, networks, images and volumes on an agent's Docker engine"),
        (name = "proxy", description = "Proxy and redirection hosts, served by an agent's nginx, with their apply status"),
        (name = "policies", description = "Policies, templates and recorded violations"),
        (name = "logs", description = "Central logs from every agent: query, live tail, export, retention and usage"),
        (name = "alerts", description = "Alert channels (SMTP, Slack, webhook), rules and the alert history with deliveries"),
        (name = "events", description = "The event inventory: container lifecycle, agents, proxy applies, violations, alerts"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token from /api/v1/auth/login, or a personal API token (ipat_…)."))
                    .build(),
            ),
        );
    }
}

/// The router with its OpenAPI document, before layers.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(api::routes())
}

/// The OpenAPI document as served and committed.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = api_router().split_for_parts();
    let config = state.config().clone();
    let router = router
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .merge(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi))
        .fallback(|| async { AppError::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            AppError::Malformed("this method is not allowed on this route".to_owned())
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authenticate,
        ))
        .with_state(state);
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(crate::auth::ORG_HEADER),
        ])
        .max_age(Duration::from_secs(600));
    let timeout = config.request_timeout;
    router
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn(bounds))
        .layer(middleware::from_fn_with_state(timeout, request_context))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                .layer(CatchPanicLayer::custom(|_| AppError::internal("a handler panicked").into_response()))
                .layer(cors)
                .layer(CompressionLayer::new()),
        )
}

/// Makes the request id available to error bodies, enforces the timeout, and turns any
/// error a layer produced as plain text (413, 405, …) into a problem document.
async fn request_context(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    REQUEST_ID
        .scope(id, async move {
            let response = match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => {
                    return AppError::Unavailable(format!(
                        "the request took longer than {}s",
                        timeout.as_secs()
                    ))
                    .into_response();
                }
            };
            let status = response.status();
            let is_problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
            if (status.is_client_error() || status.is_server_error()) && !is_problem {
                return layer_error(status).into_response();
            }
            response
        })
        .await
}

/// The longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses a request whose target or header fields are larger than the API accepts, with a
/// problem document (hyper refuses only what does not fit its buffer, with a bare status).
async fn bounds(req: Request, next: Next) -> Response {
    use crate::error::RequestPart;
    let uri = req.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return AppError::TooLarge {
            part: RequestPart::Uri,
            detail: format!("the request target is {uri} bytes; the limit is {MAX_URI_BYTES}"),
        }
        .into_response();
    }
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return AppError::TooLarge {
            part: RequestPart::Headers,
            detail: format!(
                "the header fields are {headers} bytes; the limit is {MAX_HEADER_BYTES}"
            ),
        }
        .into_response();
    }
    next.run(req).await
}

fn layer_error(status: StatusCode) -> AppError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::TooLarge {
            part: crate::error::RequestPart::Body,
            detail: "the request body is too large".to_owned(),
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            AppError::Malformed("send JSON with Content-Type: application/json".to_owned())
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            AppError::Malformed("this method is not allowed on this route".to_owned())
        }
        StatusCode::NOT_FOUND => AppError::NotFound("route"),
        s if s.is_client_error() => {
            AppError::Malformed(s.canonical_reason().unwrap_or("bad request").to_owned())
        }
        s => AppError::internal(format!("a layer answered {s}")),
    }
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().clone();
    let start = Instant::now();
    let response = next.run(req).await;
    state.metrics().record(
        method.as_str(),
        &route,
        response.status().as_u16(),
        start.elapsed(),
    );
    response
}
