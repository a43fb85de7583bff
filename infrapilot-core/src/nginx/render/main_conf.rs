//! The main `nginx.conf`.

use super::shared::HTTP_SNIPPETS;
use super::writer::Writer;
use crate::nginx::files::RenderedFile;
use crate::nginx::layout::Layout;

/// Renders `<conf_dir>/nginx.conf`: process settings, temp paths inside the layout, the
/// resolver, the shared snippets and `hosts/*.conf`.
///
/// Run it with `nginx -c <conf_dir>/nginx.conf` (add `-e <log_dir>/error.log` so nginx does not
/// log to its compiled-in path before it has read the config).
pub fn render_main(layout: &Layout) -> RenderedFile {
    let mut w = Writer::new();
    let conf = |name: &str| layout.conf_dir.join(name);
    let temp = |name: &str| layout.temp_dir.join(name);
    w.comment("Rendered by InfraPilot; the agent rewrites this file.");
    w.directive("worker_processes", &["auto"]);
    w.directive("pid", &[layout.pid_file.as_str()]);
    w.directive("lock_file", &[&temp("nginx.lock")]);
    w.directive("error_log", &[&layout.log_dir.join("error.log"), "warn"]);
    w.blank();
    w.block("events", |w| w.directive("worker_connections", &["4096"]));
    w.blank();
    w.block("http", |w| {
        w.directive("default_type", &["application/octet-stream"]);
        w.directive("sendfile", &["on"]);
        w.directive("tcp_nopush", &["on"]);
        w.directive("server_tokens", &["off"]);
        w.directive("keepalive_timeout", &["65s"]);
        // Room for the longest domain a host may have (253 characters).
        w.directive("server_names_hash_bucket_size", &["512"]);
        w.directive("server_names_hash_max_size", &["8192"]);
        w.directive("client_body_temp_path", &[&temp("client_body")]);
        w.directive("proxy_temp_path", &[&temp("proxy")]);
        w.directive("fastcgi_temp_path", &[&temp("fastcgi")]);
        w.directive("uwsgi_temp_path", &[&temp("uwsgi")]);
        w.directive("scgi_temp_path", &[&temp("scgi")]);
        let mut resolver: Vec<String> = layout
            .resolvers
            .as_slice()
            .iter()
            .map(ToString::to_string)
            .collect();
        resolver.push("valid=10s".to_owned());
        if !layout.ipv6 {
            resolver.push("ipv6=off".to_owned());
        }
        let resolver: Vec<&str> = resolver.iter().map(String::as_str).collect();
        w.directive("resolver", &resolver);
        w.directive("resolver_timeout", &["5s"]);
        for snippet in &HTTP_SNIPPETS[..4] {
            w.directive("include", &[&conf(snippet)]);
        }
        w.directive(
            "access_log",
            &[&layout.log_dir.join("access.log"), "infrapilot"],
        );
        w.directive("include", &[&conf(HTTP_SNIPPETS[4])]);
        w.directive("include", &[&conf("hosts/*.conf")]);
    });
    RenderedFile {
        path: layout.main_conf_path(),
        contents: w.finish(),
    }
}
