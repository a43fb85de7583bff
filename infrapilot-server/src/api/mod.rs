//! HTTP handlers, one module per area. Each module exposes `routes()` for the OpenAPI
//! router; DTOs are defined beside their handlers and converted by hand to domain types.

pub mod access_lists;
#[cfg(test)]
mod account_tests;
pub mod agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod certificates;
#[cfg(test)]
mod cross_tenant;
pub mod docker;
#[cfg(test)]
mod docker_tests;
pub mod enrollment;
pub mod events;
#[cfg(test)]
mod http_tests;
#[cfg(any(test, feature = "test-support"))]
pub mod http_tests_support;
pub mod install;
pub mod logs;
#[cfg(test)]
mod logs_tests;
pub mod members;
pub mod orgs;
pub mod policies;
#[cfg(test)]
mod policy_tests;
pub mod proxy;
#[cfg(test)]
mod proxy_tests;
#[cfg(test)]
mod race_tests;
#[cfg(test)]
mod request_body_tests;
#[cfg(test)]
mod session_tests;
pub mod setup;
pub mod system;
pub mod tokens;
pub mod users;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::AppError;

pub use crate::ops::audit::{audit, audit_outcome, commit_with_account_audit};

/// Every API route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(system::routes())
        .merge(setup::routes())
        .merge(audit::routes())
        .merge(auth::routes())
        .merge(users::routes())
        .merge(orgs::routes())
        .merge(members::routes())
        .merge(tokens::routes())
        .merge(enrollment::routes())
        .merge(agents::routes())
        .merge(policies::routes())
        .merge(docker::routes())
        .merge(proxy::routes())
        .merge(certificates::routes())
        .merge(access_lists::routes())
        .merge(install::routes())
        .merge(logs::routes())
        .merge(events::routes())
        .merge(alerts::routes())
}

/// The most items one page may hold.
pub const MAX_PAGE: i64 = 200;

/// Cursor pagination parameters, shared by every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many items to return (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The validated limit, plus one to learn whether another page follows.
    pub fn fetch_limit(&self) -> Result<i64, AppError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::field(
                "limit",
                format!("must be from 1 to {MAX_PAGE}"),
            ));
        }
        Ok(limit + 1)
    }

    /// The decoded `(created_at, id)` keyset cursor.
    pub fn after(&self) -> Result<Option<(i64, String)>, AppError> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let bad = || AppError::field("cursor", "is not a cursor this API returned");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (t, id) = text.split_once(':').ok_or_else(bad)?;
        let t = t.parse::<i64>().map_err(|_| bad())?;
        if id.is_empty() || id.len() > 100 {
            return Err(bad());
        }
        Ok(Some((t, id.to_owned())))
    }
}

/// Encodes a keyset cursor.
pub fn cursor(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}:{id}"))
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        limit: i64,
        key: impl Fn(&R) -> (i64, String),
        convert: impl Fn(R) -> T,
    ) -> Page<T> {
        let page_size = usize::try_from(limit - 1).unwrap_or(0);
        let next_cursor = if rows.len() > page_size {
            rows.truncate(page_size);
            rows.last().map(|r| {
                let (t, id) = key(r);
                cursor(t, &id)
            })
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(convert).collect(),
            next_cursor,
        }
    }
}

/// Hashes a password with the server's argon2id parameters, on a blocking thread (it takes
/// tens of milliseconds by design).
pub async fn hash_password(
    state: &AppState,
    password: infrapilot_core::identity::Password,
) -> Result<String, AppError> {
    let params = *state.password_params();
    let salt = crate::util::random::<16>();
    tokio::task::spawn_blocking(move || {
        infrapilot_core::identity::hash_password(&password, &salt, &params)
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)
}

/// A display name: 1–100 characters, no control characters, trimmed.
pub fn display_name(field: &str, input: &str) -> Result<String, AppError> {
    let name = input.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::field(field, "must be 1 to 100 characters long"));
    }
    if name.chars().any(char::is_control) {
        return Err(AppError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// An organization slug: 2–63 of `a-z`, `0-9`, `-`, starting with a letter or digit.
pub fn slug(field: &str, input: &str) -> Result<String, AppError> {
    let ok = (2..=63).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && input.as_bytes()[0] != b'-'
        && !input.ends_with('-');
    if ok {
        Ok(input.to_owned())
    } else {
        Err(AppError::field(
            field,
            "must be 2 to 63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ))
    }
}

/// A slug made from a display name (`Acme Inc.` → `acme-inc`), with a suffix for uniqueness.
pub fn slug_from_name(name: &str, suffix: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_end_matches('-').chars().take(40).collect();
    if slug.len() < 2 {
        slug = "org".to_owned();
    }
    format!("{}-{suffix}", slug.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_named() {
        let q = PageQuery {
            limit: Some(10),
            cursor: Some(cursor(42, "abc")),
        };
        assert_eq!(q.after().unwrap(), Some((42, "abc".to_owned())));
        assert_eq!(q.fetch_limit().unwrap(), 11);
        let bad = PageQuery {
            limit: Some(0),
            cursor: Some("%%%".into()),
        };
        assert!(bad.fetch_limit().is_err());
        let AppError::Invalid(errors) = bad.after().unwrap_err() else {
            panic!()
        };
        assert_eq!(errors[0].field, "cursor");
    }

    #[test]
    fn slugs() {
        assert_eq!(slug_from_name("Acme Inc.", "x1"), "acme-inc-x1");
        assert_eq!(slug_from_name("!!", "x1"), "org-x1");
        assert!(slug("slug", "ok-slug").is_ok());
        assert!(slug("slug", "-bad").is_err());
        assert!(slug("slug", "Bad").is_err());
    }
}
