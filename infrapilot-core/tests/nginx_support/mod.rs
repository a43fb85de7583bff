//! Fixtures, proptest strategies, a config tokenizer and a snapshot helper shared by the nginx
//! integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use infrapilot_core::ids::{AccessListId, CertificateId, ProxyHostId};
use infrapilot_core::nginx::*;
use infrapilot_core::values::{Cidr, Domain, Upstream};
use proptest::prelude::*;
use uuid::Uuid;

pub fn layout(root: &str) -> Layout {
    let p = |s: &str| ConfPath::parse(&format!("{root}{s}")).unwrap();
    Layout {
        conf_dir: p(""),
        cert_dir: p("/certs"),
        htpasswd_dir: p("/htpasswd"),
        log_dir: p("/logs"),
        temp_dir: p("/tmp"),
        acme_webroot: p("/acme"),
        pid_file: p("/nginx.pid"),
        resolvers: Resolvers::new(vec![Resolver::parse("127.0.0.11").unwrap()]).unwrap(),
        ipv6: true,
        http_port: 80,
        https_port: 443,
    }
}

pub fn host_id(n: u128) -> ProxyHostId {
    ProxyHostId::from_uuid(Uuid::from_u128(n))
}

pub fn cert_id(n: u128) -> CertificateId {
    CertificateId::from_uuid(Uuid::from_u128(n))
}

pub fn domains(names: &[&str]) -> DomainList {
    DomainList::new(names.iter().map(|n| Domain::parse(n).unwrap()).collect()).unwrap()
}

pub fn upstream(s: &str) -> Upstream {
    Upstream::parse(s).unwrap()
}

/// A plain-HTTP host with every option at its default.
pub fn plain_host() -> ProxyHost {
    ProxyHost {
        id: host_id(1),
        domains: domains(&["app.example.com"]),
        upstream: upstream("http://app:8080"),
        ssl: SslMode::None,
        headers: SecurityHeaders::default(),
        proxy: ProxyOptions::default(),
        rate_limit: None,
        locations: Locations::default(),
        access_list: None,
        access_list_id: None,
    }
}

/// Let's Encrypt, force HTTPS, HSTS, HTTP/2 and every security header.
pub fn tls_host() -> ProxyHost {
    ProxyHost {
        id: host_id(2),
        domains: domains(&["secure.example.com", "www.secure.example.com"]),
        upstream: upstream("https://10.0.0.5:8443"),
        ssl: SslMode::LetsEncrypt(Tls {
            certificate: cert_id(20),
            force_https: true,
            http2: true,
            hsts: Some(Hsts {
                max_age_seconds: 31_536_000,
                include_subdomains: true,
                preload: true,
            }),
        }),
        headers: SecurityHeaders {
            frame_options: Some(FrameOptions::SameOrigin),
            content_type_nosniff: true,
            referrer_policy: Some(ReferrerPolicy::StrictOriginWhenCrossOrigin),
            content_security_policy: Some(
                ContentSecurityPolicy::parse("default-src 'self'; img-src * data:").unwrap(),
            ),
        },
        ..plain_host()
    }
}

/// Custom locations with their own upstreams and options, over a custom certificate that
/// does not force HTTPS.
pub fn locations_host() -> ProxyHost {
    let options = ProxyOptions {
        websocket: false,
        client_max_body_size: Some(BodySize::Megabytes(50.try_into().unwrap())),
        timeouts: ProxyTimeouts {
            connect: Seconds::new(5).unwrap(),
            read: Seconds::new(300).unwrap(),
            send: Seconds::new(300).unwrap(),
        },
    };
    ProxyHost {
        id: host_id(3),
        domains: domains(&["*.apps.example.com"]),
        upstream: upstream("container:frontend:3000"),
        ssl: SslMode::Custom(Tls {
            certificate: cert_id(30),
            force_https: false,
            http2: false,
            hsts: None,
        }),
        locations: Locations::new(vec![
            Location {
                path: LocationPath::parse("/api/").unwrap(),
                upstream: upstream("http://api.internal:9000/v1"),
                options,
            },
            Location {
                path: LocationPath::parse("/static").unwrap(),
                upstream: upstream("http://[fd00::5]:8080"),
                options: ProxyOptions::default(),
            },
        ])
        .unwrap(),
        ..plain_host()
    }
}

/// An access list with address rules and basic-auth users.
pub fn access_host() -> ProxyHost {
    ProxyHost {
        id: host_id(4),
        domains: domains(&["admin.example.com"]),
        access_list: Some(AccessList {
            rules: vec![
                AccessRule {
                    action: AccessAction::Deny,
                    cidr: Cidr::parse("10.0.0.13").unwrap(),
                },
                AccessRule {
                    action: AccessAction::Allow,
                    cidr: Cidr::parse("10.0.0.0/8").unwrap(),
                },
                AccessRule {
                    action: AccessAction::Allow,
                    cidr: Cidr::parse("2001:db8::/32").unwrap(),
                },
            ],
            users: vec![
                BasicAuthUser {
                    username: Username::parse("alice").unwrap(),
                    password_hash: PasswordHash::parse("$apr1$abcdefgh$0123456789abcdefghijkl")
                        .unwrap(),
                },
                BasicAuthUser {
                    username: Username::parse("bob smith").unwrap(),
                    password_hash: PasswordHash::parse("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")
                        .unwrap(),
                },
            ],
            satisfy: Satisfy::Any,
        }),
        ..plain_host()
    }
}

/// A per-host rate limit.
pub fn rate_limit_host() -> ProxyHost {
    ProxyHost {
        id: host_id(5),
        domains: domains(&["api.example.com"]),
        rate_limit: Some(RateLimit::new(10, 20, true).unwrap()),
        ..plain_host()
    }
}

/// WebSocket pass-through.
pub fn websocket_host() -> ProxyHost {
    ProxyHost {
        id: host_id(6),
        domains: domains(&["ws.example.com"]),
        upstream: upstream("http://chat:4000"),
        proxy: ProxyOptions {
            websocket: true,
            ..ProxyOptions::default()
        },
        ..plain_host()
    }
}

/// A 301 redirect to HTTPS that keeps the path, with TLS on its own names.
pub fn redirect_host() -> RedirectionHost {
    RedirectionHost {
        id: host_id(7),
        domains: domains(&["old.example.com", "legacy.example.org"]),
        target: Domain::parse("new.example.com").unwrap(),
        target_scheme: TargetScheme::Https,
        status: RedirectStatus::MovedPermanently,
        preserve_path: true,
        ssl: SslMode::LetsEncrypt(Tls {
            certificate: cert_id(70),
            force_https: true,
            http2: false,
            hsts: None,
        }),
    }
}

/// A default server with both custom pages.
pub fn default_server() -> DefaultServer {
    DefaultServer {
        not_found_page: Some(ErrorPageHtml::parse("<h1>Not here</h1>\n").unwrap()),
        bad_gateway_page: Some(ErrorPageHtml::parse("<h1>Upstream down</h1>\n").unwrap()),
        unclaimed: Unclaimed::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots

fn snapshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/nginx")
        .join(name)
}

/// Compares `actual` with the stored snapshot `name`; with `UPDATE_SNAPSHOTS=1` rewrites it.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "snapshot {} is missing ({e}); run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "snapshot {name} differs from line {}:\n--- expected\n{}\n--- actual\n{}\n\
             (run with UPDATE_SNAPSHOTS=1 to accept)",
            first + 1,
            expected
                .lines()
                .skip(first)
                .take(5)
                .collect::<Vec<_>>()
                .join("\n"),
            actual
                .lines()
                .skip(first)
                .take(5)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

/// The token structure of a config file, read the way nginx's `ngx_conf_read_token` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Structure {
    /// Statements ended by `;`.
    pub semicolons: usize,
    /// Blocks opened.
    pub opens: usize,
    /// Blocks closed.
    pub closes: usize,
    /// Comments.
    pub comments: usize,
    /// The first word of every statement and block.
    pub directives: BTreeSet<String>,
}

/// Reads `text` like nginx does; an error means nginx would refuse the text outright.
pub fn structure(text: &str) -> Result<Structure, String> {
    let mut s = Structure::default();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let (mut last_space, mut need_space, mut comment) = (true, false, false);
    let (mut quoted, mut d_quoted, mut s_quoted, mut variable) = (false, false, false, false);
    let end = |words: &mut Vec<String>, s: &mut Structure| -> Result<(), String> {
        let first = words.first().ok_or("statement without a word")?.clone();
        s.directives.insert(first);
        words.clear();
        Ok(())
    };
    for ch in text.chars() {
        if ch == '\n' {
            comment = false;
        }
        if comment {
            continue;
        }
        if quoted {
            quoted = false;
            word.push(ch);
            continue;
        }
        if need_space {
            match ch {
                ' ' | '\t' | '\r' | '\n' => {
                    last_space = true;
                    need_space = false;
                    continue;
                }
                ';' => {
                    need_space = false;
                    last_space = true;
                    s.semicolons += 1;
                    end(&mut words, &mut s)?;
                    continue;
                }
                '{' => {
                    need_space = false;
                    last_space = true;
                    s.opens += 1;
                    end(&mut words, &mut s)?;
                    continue;
                }
                _ => return Err(format!("unexpected {ch:?} after a quoted string")),
            }
        }
        if last_space {
            match ch {
                ' ' | '\t' | '\r' | '\n' => continue,
                ';' => {
                    s.semicolons += 1;
                    end(&mut words, &mut s)?;
                }
                '{' => {
                    s.opens += 1;
                    end(&mut words, &mut s)?;
                }
                '}' => {
                    if !words.is_empty() {
                        return Err("unexpected }".into());
                    }
                    s.closes += 1;
                }
                '#' => {
                    s.comments += 1;
                    comment = true;
                }
                '\\' => {
                    quoted = true;
                    last_space = false;
                    word.push(ch);
                }
                '"' => {
                    d_quoted = true;
                    last_space = false;
                }
                '\'' => {
                    s_quoted = true;
                    last_space = false;
                }
                '$' => {
                    variable = true;
                    last_space = false;
                    word.push(ch);
                }
                _ => {
                    last_space = false;
                    word.push(ch);
                }
            }
            continue;
        }
        if ch == '{' && variable {
            word.push(ch);
            continue;
        }
        variable = false;
        if ch == '\\' {
            quoted = true;
            word.push(ch);
            continue;
        }
        if ch == '$' {
            variable = true;
            word.push(ch);
            continue;
        }
        let mut found = false;
        if d_quoted {
            if ch == '"' {
                d_quoted = false;
                need_space = true;
                found = true;
            }
        } else if s_quoted {
            if ch == '\'' {
                s_quoted = false;
                need_space = true;
                found = true;
            }
        } else if matches!(ch, ' ' | '\t' | '\r' | '\n' | ';' | '{') {
            last_space = true;
            found = true;
        }
        if found {
            words.push(std::mem::take(&mut word));
            if ch == ';' {
                s.semicolons += 1;
                end(&mut words, &mut s)?;
            } else if ch == '{' {
                s.opens += 1;
                end(&mut words, &mut s)?;
            }
        } else {
            word.push(ch);
        }
    }
    if !words.is_empty() || !last_space || d_quoted || s_quoted {
        return Err("unexpected end of file".into());
    }
    if s.opens != s.closes {
        return Err(format!("{} blocks opened, {} closed", s.opens, s.closes));
    }
    Ok(s)
}

/// The combined structure of every `.conf` file of a config set.
pub fn set_structure(set: &ConfigSet) -> Result<Structure, String> {
    let mut total = Structure::default();
    for file in set.files().filter(|f| f.path.ends_with(".conf")) {
        let s = structure(&file.contents).map_err(|e| format!("{}: {e}", file.path))?;
        total.semicolons += s.semicolons;
        total.opens += s.opens;
        total.closes += s.closes;
        total.comments += s.comments;
        total.directives.extend(s.directives);
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z][a-z0-9]{0,8}",
        1 => "[a-z0-9][a-z0-9-]{0,61}[a-z0-9]",
        1 => "xn--bcher-kva",
    ]
}

pub fn domain() -> impl Strategy<Value = Domain> {
    (
        any::<bool>(),
        prop::collection::vec(label(), 1..5),
        "[a-z]{2,6}",
    )
        .prop_filter_map("valid domain", |(wild, labels, tld)| {
            let name = format!("{}{}.{tld}", if wild { "*." } else { "" }, labels.join("."));
            Domain::parse(&name).ok()
        })
}

pub fn domain_list() -> impl Strategy<Value = DomainList> {
    prop::collection::vec(domain(), 1..4).prop_map(|mut ds| {
        let mut seen = BTreeSet::new();
        ds.retain(|d| seen.insert(d.clone()));
        DomainList::new(ds).unwrap()
    })
}

pub fn upstream_strategy() -> impl Strategy<Value = Upstream> {
    let host = prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        any::<[u8; 4]>().prop_map(|b| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])),
        any::<u128>().prop_map(|v| format!("[{}]", std::net::Ipv6Addr::from(v))),
    ];
    let url = (
        prop_oneof![Just("http"), Just("https")],
        host,
        prop::option::of(1u16..),
        prop::option::of("(/[a-zA-Z0-9._~+=:@,!-]{1,12}|/%2[0-9A-F]){1,3}/?"),
    )
        .prop_filter_map("valid url", |(scheme, host, port, path)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            Upstream::parse(&format!(
                "{scheme}://{host}{port}{}",
                path.unwrap_or_default()
            ))
            .ok()
        });
    let container = ("[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}", 1u16..)
        .prop_filter_map("valid container", |(n, p)| {
            Upstream::parse(&format!("container:{n}:{p}")).ok()
        });
    prop_oneof![3 => url, 1 => container]
}

/// Certificates come from a small pool, so the nginx test only makes a few.
pub fn tls() -> impl Strategy<Value = Tls> {
    (
        0u128..3,
        any::<bool>(),
        any::<bool>(),
        prop::option::of((
            prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
            any::<bool>(),
            any::<bool>(),
        )),
    )
        .prop_map(|(cert, force_https, http2, hsts)| Tls {
            certificate: cert_id(1000 + cert),
            force_https,
            http2,
            hsts: hsts.map(|(max_age_seconds, include_subdomains, preload)| Hsts {
                max_age_seconds,
                include_subdomains,
                preload,
            }),
        })
}

pub fn ssl_mode() -> impl Strategy<Value = SslMode> {
    prop_oneof![
        Just(SslMode::None),
        tls().prop_map(SslMode::LetsEncrypt),
        tls().prop_map(SslMode::Custom),
    ]
}

pub fn csp() -> impl Strategy<Value = ContentSecurityPolicy> {
    "[ -~]{1,80}".prop_filter_map("valid csp", |s| ContentSecurityPolicy::parse(&s).ok())
}

pub fn headers() -> impl Strategy<Value = SecurityHeaders> {
    (
        prop::option::of(prop_oneof![
            Just(FrameOptions::Deny),
            Just(FrameOptions::SameOrigin)
        ]),
        any::<bool>(),
        prop::option::of(prop::sample::select(ReferrerPolicy::ALL.to_vec())),
        prop::option::of(csp()),
    )
        .prop_map(
            |(frame_options, content_type_nosniff, referrer_policy, content_security_policy)| {
                SecurityHeaders {
                    frame_options,
                    content_type_nosniff,
                    referrer_policy,
                    content_security_policy,
                }
            },
        )
}

pub fn seconds() -> impl Strategy<Value = Seconds> {
    prop_oneof![Just(1u32), Just(Seconds::MAX), 1u32..=Seconds::MAX]
        .prop_map(|s| Seconds::new(s).unwrap())
}

/// A rate limit, its bounds (a burst of 0 above all: nginx refuses `burst=0`) as likely as
/// any value between them.
pub fn rate_limit() -> impl Strategy<Value = RateLimit> {
    (
        prop_oneof![Just(1u32), Just(RateLimit::MAX), 1u32..=RateLimit::MAX],
        prop_oneof![
            Just(0u32),
            Just(1u32),
            Just(RateLimit::MAX),
            0u32..=RateLimit::MAX
        ],
        any::<bool>(),
    )
        .prop_map(|(rate, burst, nodelay)| RateLimit::new(rate, burst, nodelay).unwrap())
}

pub fn proxy_options() -> impl Strategy<Value = ProxyOptions> {
    (
        any::<bool>(),
        prop::option::of(prop_oneof![
            Just(BodySize::Unlimited),
            prop_oneof![Just(1u32), Just(u32::MAX), 1u32..]
                .prop_map(|n| BodySize::Megabytes(n.try_into().unwrap())),
        ]),
        seconds(),
        seconds(),
        seconds(),
    )
        .prop_map(
            |(websocket, client_max_body_size, connect, read, send)| ProxyOptions {
                websocket,
                client_max_body_size,
                timeouts: ProxyTimeouts {
                    connect,
                    read,
                    send,
                },
            },
        )
}

pub fn location_path() -> impl Strategy<Value = LocationPath> {
    "(/[a-zA-Z0-9._~+=:@,!-]{1,10}|/%2[0-9A-F]){1,3}/?"
        .prop_filter_map("valid location", |s| LocationPath::parse(&s).ok())
}

pub fn locations() -> impl Strategy<Value = Locations> {
    prop::collection::vec(
        (location_path(), upstream_strategy(), proxy_options()),
        0..4,
    )
    .prop_map(|ls| {
        let mut seen = BTreeSet::new();
        let ls = ls
            .into_iter()
            .filter(|(p, _, _)| seen.insert(p.clone()))
            .map(|(path, upstream, options)| Location {
                path,
                upstream,
                options,
            })
            .collect();
        Locations::new(ls).unwrap()
    })
}

pub fn cidr() -> impl Strategy<Value = Cidr> {
    prop_oneof![
        // A single address, written without a prefix length.
        any::<std::net::Ipv4Addr>().prop_map(|a| Cidr::parse(&a.to_string()).unwrap()),
        any::<std::net::Ipv6Addr>().prop_map(|a| Cidr::parse(&a.to_string()).unwrap()),
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| {
            let m = if p == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(p))
            };
            Cidr::parse(&format!("{}/{p}", std::net::Ipv4Addr::from(a & m))).unwrap()
        }),
        (any::<u128>(), 0u8..=128).prop_map(|(a, p)| {
            let m = if p == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(p))
            };
            Cidr::parse(&format!("{}/{p}", std::net::Ipv6Addr::from(a & m))).unwrap()
        }),
    ]
}

pub fn access_list() -> impl Strategy<Value = AccessList> {
    let rule = (any::<bool>(), cidr()).prop_map(|(allow, cidr)| AccessRule {
        action: if allow {
            AccessAction::Allow
        } else {
            AccessAction::Deny
        },
        cidr,
    });
    // Every hash format the model accepts.
    let prefix = prop::sample::select(vec![
        "$apr1$", "$1$", "$5$", "$6$", "$2a$", "$2b$", "$2y$", "$y$", "{SHA}", "{SSHA}",
    ]);
    let user = ("[a-zA-Z0-9 ._@-]{1,16}", prefix, "[a-zA-Z0-9./=+-]{8,40}").prop_filter_map(
        "valid user",
        |(name, prefix, rest)| {
            Some(BasicAuthUser {
                username: Username::parse(&name).ok()?,
                password_hash: PasswordHash::parse(&format!("{prefix}{rest}")).ok()?,
            })
        },
    );
    (
        prop::collection::vec(rule, 0..4),
        prop::collection::vec(user, 0..3),
        prop_oneof![Just(Satisfy::Any), Just(Satisfy::All)],
    )
        .prop_map(|(rules, users, satisfy)| AccessList {
            rules,
            users,
            satisfy,
        })
}

/// How a host's access is given: none, its own list, a shared list the server resolved into
/// it, or a shared list left unresolved (rendered as `deny all`).
pub fn host_access() -> impl Strategy<Value = (Option<AccessList>, Option<AccessListId>)> {
    let shared = AccessListId::from_uuid(Uuid::from_u128(77));
    prop_oneof![
        Just((None, None)),
        access_list().prop_map(|l| (Some(l), None)),
        access_list().prop_map(move |l| (Some(l), Some(shared))),
        Just((None, Some(shared))),
    ]
}

/// A proxy host; every field of the model is drawn, each option's bounds included.
pub fn proxy_host(id: u128) -> impl Strategy<Value = ProxyHost> {
    (
        domain_list(),
        upstream_strategy(),
        ssl_mode(),
        headers(),
        proxy_options(),
        prop::option::of(rate_limit()),
        locations(),
        host_access(),
    )
        .prop_map(
            move |(domains, upstream, ssl, headers, proxy, rate_limit, locations, access)| {
                ProxyHost {
                    id: host_id(id),
                    domains,
                    upstream,
                    ssl,
                    headers,
                    proxy,
                    rate_limit,
                    locations,
                    access_list: access.0,
                    access_list_id: access.1,
                }
            },
        )
}

/// Where a redirect goes: a concrete name, a scheme, a status, whether the path is kept.
pub fn redirect_target() -> impl Strategy<Value = (Domain, TargetScheme, RedirectStatus, bool)> {
    (
        domain().prop_filter("concrete target", |d| !d.is_wildcard()),
        prop_oneof![
            Just(TargetScheme::Keep),
            Just(TargetScheme::Http),
            Just(TargetScheme::Https)
        ],
        prop_oneof![
            Just(RedirectStatus::MovedPermanently),
            Just(RedirectStatus::Found)
        ],
        any::<bool>(),
    )
}

pub fn redirection_host(id: u128) -> impl Strategy<Value = RedirectionHost> {
    (domain_list(), redirect_target(), ssl_mode()).prop_map(
        move |(domains, (target, target_scheme, status, preserve_path), ssl)| RedirectionHost {
            id: host_id(id),
            domains,
            target,
            target_scheme,
            status,
            preserve_path,
            ssl,
        },
    )
}

pub fn default_server_strategy() -> impl Strategy<Value = DefaultServer> {
    let page = "\\PC{1,200}".prop_filter_map("valid page", |s| ErrorPageHtml::parse(&s).ok());
    let unclaimed = prop_oneof![
        Just(Unclaimed::NotFound),
        Just(Unclaimed::Drop),
        redirect_target().prop_map(|(target, target_scheme, status, preserve_path)| {
            Unclaimed::Redirect {
                target,
                target_scheme,
                status,
                preserve_path,
            }
        }),
    ];
    (
        prop::option::of(page.clone()),
        prop::option::of(page),
        unclaimed,
    )
        .prop_map(
            |(not_found_page, bad_gateway_page, unclaimed)| DefaultServer {
                not_found_page,
                bad_gateway_page,
                unclaimed,
            },
        )
}

/// A whole site: 1–3 proxy hosts, 0–2 redirection hosts and a default server.
pub fn site() -> impl Strategy<Value = Site> {
    (
        prop::collection::vec(any::<bool>(), 1..4),
        prop::collection::vec(any::<bool>(), 0..3),
    )
        .prop_flat_map(|(p, r)| {
            let proxies: Vec<_> = (0..p.len()).map(|i| proxy_host(100 + i as u128)).collect();
            let redirects: Vec<_> = (0..r.len())
                .map(|i| redirection_host(200 + i as u128))
                .collect();
            (proxies, redirects, default_server_strategy())
        })
        .prop_map(|(proxy_hosts, redirection_hosts, default_server)| Site {
            default_server,
            proxy_hosts,
            redirection_hosts,
        })
}
