//! No input value can introduce a directive, block or comment it was not given.
//!
//! Arbitrary strings full of config syntax (`;`, `{`, `}`, `#`, quotes, backslashes, newlines,
//! `$variables`, look-alikes such as U+FF1B and U+037E) go through every string-accepting
//! constructor. Whatever is accepted is put into a site, and the rendered config must have the
//! same token structure (statements, blocks, comments, directive names, read the way nginx
//! reads them) as the same site with a benign value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod nginx_support;

use infrapilot_core::nginx::*;
use infrapilot_core::values::{Cidr, Domain, Upstream};
use nginx_support::*;
use proptest::prelude::*;

const ROOT: &str = "/srv/infrapilot";

fn base_site() -> Site {
    Site {
        default_server: default_server(),
        proxy_hosts: vec![tls_host(), locations_host(), access_host()],
        redirection_hosts: vec![redirect_host()],
    }
}

fn render(site: &Site, layout: &Layout) -> ConfigSet {
    render_site(site, layout)
}

/// Renders `benign` and `tampered` and demands the same structure.
fn same_structure(
    benign: (&Site, &Layout),
    tampered: (&Site, &Layout),
) -> Result<(), TestCaseError> {
    let want = set_structure(&render(benign.0, benign.1)).map_err(TestCaseError::fail)?;
    let set = render(tampered.0, tampered.1);
    let got = set_structure(&set).map_err(TestCaseError::fail)?;
    prop_assert_eq!(&got, &want);
    for host in &set.hosts {
        for file in host.files.iter().filter(|f| f.path.ends_with(".htpasswd")) {
            for line in file.contents.lines() {
                prop_assert_eq!(line.matches(':').count(), 1, "{:?}", line);
            }
        }
    }
    Ok(())
}

fn same_site_structure(benign: &Site, tampered: &Site) -> Result<(), TestCaseError> {
    let l = layout(ROOT);
    same_structure((benign, &l), (tampered, &l))
}

/// Strings made of config syntax, look-alikes and ordinary text, behind a prefix that makes
/// them more likely to pass a constructor's first checks.
fn nasty(prefixes: &'static [&'static str]) -> impl Strategy<Value = String> {
    const SYNTAX: &[&str] = &[
        ";", "{", "}", "#", "\"", "'", "\\", "\n", "\r", " ", "\t", "$host", "${x}", "$",
        "\u{FF1B}", "\u{037E}", "\u{FF5B}", "\u{FF5D}", "\u{FF03}", "\u{2028}", "\u{0}", "\u{85}",
        "/", ".", ":", "*.", "%2F", "=", "-", "@", "[::1]",
    ];
    let piece = prop_oneof![
        3 => prop::sample::select(SYNTAX).prop_map(String::from),
        2 => "[a-z0-9]{1,6}",
        1 => "\\PC{1,3}",
    ];
    (
        prop::sample::select(prefixes),
        prop::collection::vec(piece, 0..12),
    )
        .prop_map(|(prefix, pieces)| format!("{prefix}{}", pieces.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn domains(input in nasty(&["", "a.", "*.", "example.com"])) {
        if let Ok(d) = Domain::parse(&input) {
            let mut site = base_site();
            site.proxy_hosts[0].domains = DomainList::new(vec![d.clone()]).unwrap();
            if !d.is_wildcard() {
                site.redirection_hosts[0].target = d;
            }
            same_site_structure(&base_site(), &site)?;
        }
    }

    #[test]
    fn upstreams(input in nasty(&["http://", "https://", "container:", "http://a:1/"])) {
        if let Ok(u) = Upstream::parse(&input) {
            let benign = match &u {
                Upstream::Url { scheme, .. } => Upstream::parse(&format!("{}://benign:1", scheme.as_str())).unwrap(),
                Upstream::Container { .. } => Upstream::parse("container:benign:1").unwrap(),
            };
            let (mut a, mut b) = (base_site(), base_site());
            a.proxy_hosts[0].upstream = benign.clone();
            b.proxy_hosts[0].upstream = u.clone();
            let mut locs = b.proxy_hosts[1].locations.as_slice().to_vec();
            locs[0].upstream = u;
            b.proxy_hosts[1].locations = Locations::new(locs).unwrap();
            let mut locs = a.proxy_hosts[1].locations.as_slice().to_vec();
            locs[0].upstream = benign;
            a.proxy_hosts[1].locations = Locations::new(locs).unwrap();
            same_site_structure(&a, &b)?;
        }
    }

    #[test]
    fn cidrs(input in nasty(&["", "10.", "::", "10.0.0.0/"])) {
        if let Ok(c) = Cidr::parse(&input) {
            let mut site = base_site();
            let list = site.proxy_hosts[2].access_list.as_mut().unwrap();
            list.rules[0].cidr = c;
            same_site_structure(&base_site(), &site)?;
        }
    }

    #[test]
    fn location_paths(input in nasty(&["/", "/api", "/.well-known/"])) {
        if let Ok(p) = LocationPath::parse(&input) {
            let mut site = base_site();
            let mut locs = site.proxy_hosts[1].locations.as_slice().to_vec();
            locs.truncate(1);
            locs[0].path = p;
            site.proxy_hosts[1].locations = Locations::new(locs.clone()).unwrap();
            let mut benign = base_site();
            locs[0].path = LocationPath::parse("/benign").unwrap();
            benign.proxy_hosts[1].locations = Locations::new(locs).unwrap();
            same_site_structure(&benign, &site)?;
        }
    }

    #[test]
    fn content_security_policies(input in nasty(&["", "default-src 'self'"])) {
        if let Ok(csp) = ContentSecurityPolicy::parse(&input) {
            let mut site = base_site();
            site.proxy_hosts[0].headers.content_security_policy = Some(csp);
            same_site_structure(&base_site(), &site)?;
        }
    }

    #[test]
    fn referrer_policies(input in nasty(&["", "no-referrer", "origin"])) {
        if let Ok(policy) = input.parse::<ReferrerPolicy>() {
            let mut site = base_site();
            site.proxy_hosts[0].headers.referrer_policy = Some(policy);
            same_site_structure(&base_site(), &site)?;
        }
    }

    #[test]
    fn basic_auth_users(name in nasty(&["", "bob"]), hash in nasty(&["$apr1$", "{SHA}", "$6$"])) {
        let (Ok(username), Ok(password_hash)) = (Username::parse(&name), PasswordHash::parse(&hash)) else {
            return Ok(());
        };
        let mut site = base_site();
        let list = site.proxy_hosts[2].access_list.as_mut().unwrap();
        list.users[0] = BasicAuthUser { username, password_hash };
        same_site_structure(&base_site(), &site)?;
        let set = render(&site, &layout(ROOT));
        let htpasswd = set.hosts.iter().flat_map(|h| &h.files).find(|f| f.path.ends_with(".htpasswd")).unwrap();
        prop_assert_eq!(htpasswd.contents.split('\n').count(), 3, "{:?}", htpasswd.contents);
        prop_assert!(!htpasswd.contents.contains('\r'));
    }

    #[test]
    fn error_pages(input in nasty(&["", "<h1>"])) {
        if let Ok(page) = ErrorPageHtml::parse(&input) {
            let mut site = base_site();
            site.default_server.not_found_page = Some(page.clone());
            let set = render(&site, &layout(ROOT));
            same_site_structure(&base_site(), &site)?;
            let file = set.shared.iter().find(|f| f.path.ends_with("pages/404.html")).unwrap();
            prop_assert_eq!(&file.contents, page.as_str());
        }
    }

    #[test]
    fn layout_paths(input in nasty(&["/", "/srv/", "/var/lib/"]), which in 0usize..7) {
        if let Ok(path) = ConfPath::parse(&input) {
            let mut l = layout(ROOT);
            *[&mut l.conf_dir, &mut l.cert_dir, &mut l.htpasswd_dir, &mut l.log_dir,
              &mut l.temp_dir, &mut l.acme_webroot, &mut l.pid_file][which] = path;
            let site = base_site();
            same_structure((&site, &layout(ROOT)), (&site, &l))?;
        }
    }

    #[test]
    fn resolvers(input in nasty(&["", "127.0.0.", "[", "[fd00::1]:"])) {
        if let Ok(r) = Resolver::parse(&input) {
            let mut l = layout(ROOT);
            l.resolvers = Resolvers::new(vec![r]).unwrap();
            let site = base_site();
            same_structure((&site, &layout(ROOT)), (&site, &l))?;
        }
    }

    #[test]
    fn json_input_goes_through_the_same_checks(input in nasty(&["", "a.com", "/x", "http://a/"])) {
        // Any string field of a proxy host, given through JSON, is validated like the
        // constructors above; whatever deserializes renders with the benign structure.
        let base = serde_json::to_value(tls_host()).unwrap();
        for pointer in ["/domains/0", "/upstream", "/headers/content_security_policy", "/headers/referrer_policy"] {
            let mut value = base.clone();
            *value.pointer_mut(pointer).unwrap() = serde_json::Value::String(input.clone());
            if let Ok(host) = serde_json::from_value::<ProxyHost>(value) {
                let mut site = base_site();
                let https = matches!(host.upstream, Upstream::Url { scheme: infrapilot_core::values::Scheme::Https, .. });
                if https {
                    site.proxy_hosts[0] = host;
                    same_site_structure(&base_site(), &site)?;
                }
            }
        }
    }
}

#[test]
fn look_alikes_and_syntax_are_refused_with_the_field_named() {
    type Check = fn(&str) -> Option<String>;
    let checks: [(&str, Check); 4] = [
        ("content_security_policy", |s| {
            ContentSecurityPolicy::parse(s)
                .err()
                .map(|e| e.field().to_owned())
        }),
        ("password_hash", |s| {
            PasswordHash::parse(s).err().map(|e| e.field().to_owned())
        }),
        ("location path", |s| {
            LocationPath::parse(&format!("/{s}"))
                .err()
                .map(|e| e.field().to_owned())
        }),
        ("path", |s| {
            ConfPath::parse(&format!("/{s}"))
                .err()
                .map(|e| e.field().to_owned())
        }),
    ];
    for bad in [
        "a\u{FF1B}b",
        "a\u{037E}b",
        "a\nb",
        "a\"b",
        "a\\b",
        "a$b",
        "a\u{0}b",
    ] {
        for (field, check) in &checks {
            assert_eq!(
                check(bad).as_deref(),
                Some(*field),
                "{field} accepted {bad:?}"
            );
        }
    }
    // User names only reach the htpasswd file, so only what ends a line or a field matters.
    for bad in ["a\nb", "a\rb", "a\u{0}b", "a:b", "#a", "a\u{85}b"] {
        assert_eq!(
            Username::parse(bad).unwrap_err().field(),
            "username",
            "{bad:?}"
        );
    }
}

#[test]
fn the_tokenizer_reads_like_nginx() {
    let check = |text: &str, semicolons: usize, opens: usize, comments: usize| {
        let s = structure(text).unwrap();
        assert_eq!(
            (s.semicolons, s.opens, s.comments),
            (semicolons, opens, comments),
            "{text:?}"
        );
    };
    check("a \"x;y{#\" b;", 1, 0, 0);
    check("a 'x;\"y' b;", 1, 0, 0);
    check("a x;y;", 2, 0, 0);
    check("a x#y;", 1, 0, 0);
    check("# c;\na;", 1, 0, 1);
    check("a ${x};", 1, 0, 0);
    check("a x\\;y;", 1, 0, 0);
    check("s { a; }", 1, 1, 0);
    assert!(structure("a \"x\"y;").is_err());
    assert!(structure("a { b;").is_err());
}
