//! The snippets every host relies on, and the default server.

use super::writer::Writer;
use crate::nginx::files::RenderedFile;
use crate::nginx::layout::Layout;
use crate::nginx::model::{DefaultServer, TargetScheme, Unclaimed};
use crate::nginx::values::{ERRORS_PREFIX, ErrorPageHtml};

/// The http-level snippets `nginx.conf` includes, in include order.
pub(crate) const HTTP_SNIPPETS: [&str; 5] = [
    "shared/mime.conf",
    "shared/log_format.conf",
    "shared/maps.conf",
    "shared/ssl.conf",
    "shared/default_server.conf",
];

/// Renders the shared snippets: `shared/*.conf` (http level), `server/error_pages.conf`
/// (included in every server block) and the custom error pages under `pages/`.
pub fn render_shared(default_server: &DefaultServer, layout: &Layout) -> Vec<RenderedFile> {
    let conf = |name: &str| layout.conf_dir.join(name);
    let mut files = vec![
        RenderedFile {
            path: conf(HTTP_SNIPPETS[0]),
            contents: mime(),
        },
        RenderedFile {
            path: conf(HTTP_SNIPPETS[1]),
            contents: log_format(),
        },
        RenderedFile {
            path: conf(HTTP_SNIPPETS[2]),
            contents: maps(),
        },
        RenderedFile {
            path: conf(HTTP_SNIPPETS[3]),
            contents: ssl(),
        },
        RenderedFile {
            path: conf(HTTP_SNIPPETS[4]),
            contents: default_server_block(default_server, layout),
        },
        RenderedFile {
            path: conf("server/error_pages.conf"),
            contents: error_pages(default_server, layout),
        },
    ];
    for (code, page) in pages(default_server) {
        files.push(RenderedFile {
            path: conf(&format!("pages/{code}.html")),
            contents: page.as_str().to_owned(),
        });
    }
    files
}

fn pages(d: &DefaultServer) -> Vec<(&'static str, &ErrorPageHtml)> {
    let mut out = Vec::new();
    if let Some(page) = &d.not_found_page {
        out.push(("404", page));
    }
    if let Some(page) = &d.bad_gateway_page {
        out.push(("502", page));
    }
    out
}

fn mime() -> String {
    let mut w = Writer::new();
    w.comment("MIME types for the few files nginx serves itself. Rendered by InfraPilot.");
    w.block("types", |w| {
        for (ty, exts) in [
            ("text/html", &["html", "htm"][..]),
            ("text/plain", &["txt"]),
            ("text/css", &["css"]),
            ("application/javascript", &["js"]),
            ("application/json", &["json"]),
            ("image/png", &["png"]),
            ("image/svg+xml", &["svg"]),
            ("image/x-icon", &["ico"]),
        ] {
            w.directive(ty, exts);
        }
    });
    w.finish()
}

fn log_format() -> String {
    let mut w = Writer::new();
    w.comment("One JSON object per request. Rendered by InfraPilot.");
    let fields = [
        ("time", "$time_iso8601"),
        ("remote_addr", "$remote_addr"),
        ("host", "$host"),
        ("method", "$request_method"),
        ("uri", "$request_uri"),
        ("status", "$status"),
        ("bytes_sent", "$body_bytes_sent"),
        ("request_time", "$request_time"),
        ("upstream_addr", "$upstream_addr"),
        ("upstream_status", "$upstream_status"),
        ("upstream_response_time", "$upstream_response_time"),
        ("referer", "$http_referer"),
        ("user_agent", "$http_user_agent"),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect();
    let format = format!("'{{{}}}'", body.join(","));
    w.directive("log_format", &["infrapilot", "escape=json", &format]);
    w.finish()
}

fn maps() -> String {
    let mut w = Writer::new();
    w.comment("Connection header for WebSocket upgrades. Rendered by InfraPilot.");
    w.block("map $http_upgrade $connection_upgrade", |w| {
        w.directive("default", &["upgrade"]);
        w.directive("''", &["close"]);
    });
    w.finish()
}

fn ssl() -> String {
    let mut w = Writer::new();
    w.comment("TLS settings for every HTTPS host. Rendered by InfraPilot.");
    w.directive("ssl_protocols", &["TLSv1.2", "TLSv1.3"]);
    w.directive("ssl_prefer_server_ciphers", &["off"]);
    w.directive("ssl_session_cache", &["shared:SSL:10m"]);
    w.directive("ssl_session_timeout", &["1d"]);
    w.directive("ssl_session_tickets", &["off"]);
    w.finish()
}

fn default_server_block(d: &DefaultServer, layout: &Layout) -> String {
    let mut w = Writer::new();
    w.comment("Answers requests for names no host claims. Rendered by InfraPilot.");
    w.block("server", |w| {
        let (http, https) = (layout.http_port.to_string(), layout.https_port.to_string());
        w.directive("listen", &[&http, "default_server"]);
        w.directive("listen", &[&https, "ssl", "default_server"]);
        if layout.ipv6 {
            w.directive("listen", &[&format!("[::]:{http}"), "default_server"]);
            w.directive(
                "listen",
                &[&format!("[::]:{https}"), "ssl", "default_server"],
            );
        }
        w.directive("ssl_reject_handshake", &["on"]);
        w.directive("server_name", &["_"]);
        let log = layout.log_dir.join("default.access.log");
        w.directive("access_log", &[&log, "infrapilot"]);
        w.directive(
            "include",
            &[&layout.conf_dir.join("server/error_pages.conf")],
        );
        // A host waiting for its first Let's Encrypt certificate is not served yet, so its
        // HTTP-01 challenges arrive here.
        super::server::acme_location(w, layout);
        let answer: Vec<String> = match &d.unclaimed {
            Unclaimed::NotFound => vec!["404".to_owned()],
            Unclaimed::Drop => vec!["444".to_owned()],
            Unclaimed::Redirect {
                target,
                target_scheme,
                status,
                preserve_path,
            } => {
                let scheme = match target_scheme {
                    TargetScheme::Keep => "$scheme",
                    TargetScheme::Http => "http",
                    TargetScheme::Https => "https",
                };
                let path = if *preserve_path { "$request_uri" } else { "" };
                vec![
                    status.code().to_string(),
                    format!("{scheme}://{}{path}", target.as_str()),
                ]
            }
        };
        let answer: Vec<&str> = answer.iter().map(String::as_str).collect();
        w.block("location /", |w| w.directive("return", &answer));
    });
    w.finish()
}

fn error_pages(d: &DefaultServer, layout: &Layout) -> String {
    let mut w = Writer::new();
    w.comment("Custom error pages, included in every server. Rendered by InfraPilot.");
    for (code, _) in pages(d) {
        let uri = format!("{ERRORS_PREFIX}{code}.html");
        let codes: &[&str] = if code == "502" {
            &["502", "504"]
        } else {
            &[code]
        };
        let mut args = codes.to_vec();
        args.push(&uri);
        w.directive("error_page", &args);
        w.block(&format!("location = {uri}"), |w| {
            w.directive("internal", &[]);
            w.directive("auth_basic", &["off"]);
            w.directive(
                "alias",
                &[&layout.conf_dir.join(&format!("pages/{code}.html"))],
            );
        });
    }
    w.finish()
}
