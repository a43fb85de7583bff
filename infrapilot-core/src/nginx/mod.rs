//! The nginx config renderer.
//!
//! Typed [`ProxyHost`]s, [`RedirectionHost`]s and a [`DefaultServer`] go in; a deterministic
//! [`ConfigSet`] of files comes out: `nginx.conf` (from a [`Layout`]), shared snippets, and one
//! config file per host, named after the host's id, plus an htpasswd file for a host with
//! basic-auth users. Each host's file is self-contained (its rate-limit zone included), so the
//! agent can replace a host, or quarantine it by leaving its files out, without touching any
//! other.
//!
//! Promises:
//! - Nothing a user gives can add a directive, block or comment: every string reaches the
//!   config through a validated type that cannot hold config syntax, or is written to a file
//!   of its own (error page HTML, password hashes).
//! - nginx starts even when an upstream does not resolve: upstreams are put in a variable and
//!   resolved per request with the layout's resolvers.
//! - `/.well-known/acme-challenge/` is served on port 80 from the ACME webroot for every host.
//! - Hosts name the files they need but the renderer does not write
//!   ([`ProxyHost::required_files`]), so a host whose certificate is missing can be left out.

mod files;
mod layout;
mod model;
mod render;
pub mod upstreams;
mod values;

pub use files::{ConfigSet, HostFiles, HostKind, RenderedFile, names};
pub use layout::{CertificatePaths, Layout, Resolvers};
pub use model::{
    AccessAction, AccessList, AccessRule, BasicAuthUser, DefaultServer, DomainList, Hsts, Location,
    Locations, ProxyHost, ProxyOptions, ProxyTimeouts, RedirectStatus, RedirectionHost, Satisfy,
    SecurityHeaders, Site, SslMode, TargetScheme, Tls, Unclaimed,
};
pub use render::{
    render_main, render_proxy_host, render_redirection_host, render_shared, render_site,
};
pub use values::{
    BodySize, ConfPath, ContentSecurityPolicy, ErrorPageHtml, FrameOptions, LocationPath,
    PasswordHash, RateLimit, RateLimitSpec, ReferrerPolicy, Resolver, Seconds, Username,
};
