//! The nginx renderer: validate a proxy host given as JSON and render its config files.

use infrapilot_core::nginx::{self as core, Layout, ProxyHost};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::SdkError;

/// The files of one rendered host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedHost {
    /// The config file first, then the htpasswd file when the host has basic-auth users.
    pub files: Vec<RenderedFile>,
    /// Files the config refers to that the renderer does not write (certificate and key).
    pub required_files: Vec<String>,
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedFile {
    /// The absolute path, under the layout's directories.
    pub path: String,
    /// The whole file.
    pub contents: String,
}

/// The layout used when none is given: the agent's default directories.
pub fn default_layout() -> Value {
    json!({
        "conf_dir": "/etc/infrapilot/nginx",
        "cert_dir": "/var/lib/infrapilot/certs",
        "htpasswd_dir": "/var/lib/infrapilot/htpasswd",
        "log_dir": "/var/log/infrapilot/nginx",
        "temp_dir": "/var/lib/infrapilot/nginx-tmp",
        "acme_webroot": "/var/lib/infrapilot/acme",
        "pid_file": "/run/infrapilot-nginx.pid",
        "resolvers": ["127.0.0.11"],
        "ipv6": false
    })
}

/// Checks a proxy host document. The error names the refused field (`domains[1]`,
/// `ssl.certificate`, `upstream`) and says why.
///
/// The document is the core's proxy host: `{"id": uuid, "domains": [...], "upstream":
/// "http://web:80" | "container:web:80", "ssl": {"mode": "none" | "lets_encrypt" | "custom",
/// …}, "headers": {…}, "proxy": {…}, "rate_limit": {…}, "locations": [...], "access_list":
/// {…}}`.
pub fn validate_proxy_host(host: &Value) -> Result<(), SdkError> {
    SdkError::from_value::<ProxyHost>(host, "").map(|_| ())
}

/// Validates and renders a proxy host for `layout` (`null` for [`default_layout`]).
pub fn render_proxy_host(host: &Value, layout: &Value) -> Result<RenderedHost, SdkError> {
    let host: ProxyHost = SdkError::from_value(host, "")?;
    let layout: Layout = match layout {
        Value::Null => SdkError::from_value(&default_layout(), "layout")?,
        other => SdkError::from_value(other, "layout")?,
    };
    let files = core::render_proxy_host(&host, &layout);
    Ok(RenderedHost {
        files: files
            .files
            .into_iter()
            .map(|f| RenderedFile {
                path: f.path,
                contents: f.contents,
            })
            .collect(),
        required_files: files.required_files,
    })
}
