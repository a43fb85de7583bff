//! Rendering: typed hosts in, config text out. Every function here is pure and total: the
//! inputs were validated when they were built, so rendering cannot fail.

mod main_conf;
mod proxy;
mod redirect;
mod server;
mod shared;
mod writer;

pub use main_conf::render_main;
pub use proxy::render_proxy_host;
pub use redirect::render_redirection_host;
pub use shared::render_shared;

use super::files::ConfigSet;
use super::layout::Layout;
use super::model::Site;

/// Renders everything one nginx instance serves: `nginx.conf`, the shared snippets and one
/// file set per host (proxy hosts first, then redirection hosts, each in the order given).
pub fn render_site(site: &Site, layout: &Layout) -> ConfigSet {
    let hosts = site
        .proxy_hosts
        .iter()
        .map(|h| render_proxy_host(h, layout))
        .chain(
            site.redirection_hosts
                .iter()
                .map(|h| render_redirection_host(h, layout)),
        )
        .collect();
    ConfigSet {
        main: render_main(layout),
        shared: render_shared(&site.default_server, layout),
        hosts,
    }
}
