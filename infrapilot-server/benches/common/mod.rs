//! What the server benchmarks share: the real `infrapilot-server` binary in its own process,
//! reached over HTTP, and readings of a process's memory and CPU from `/proc`.

// Each benchmark uses a part of this module.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use infrapilot_agent_lib::AgentEndpoint;
pub use infrapilot_agent_lib::testing::free_port;
use infrapilot_server::keys::Keys;
use serde_json::{Value, json};

/// The bench administrator's password.
pub const PASSWORD: &str = "a long bench passphrase";

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The unit of the CPU times in `/proc/<pid>/stat`: 100 a second on every Linux
/// architecture this runs on.
pub const USER_HZ: f64 = 100.0;

/// The server process and how to reach it.
pub struct Server {
    child: Child,
    /// The HTTP API's base URL.
    pub http: String,
    /// The agent endpoint, as agents dial it.
    pub agent_endpoint: AgentEndpoint,
    setup_code: String,
    /// `sqlite` or `postgresql`.
    pub database: &'static str,
    /// A client for the API.
    pub client: reqwest::Client,
    /// PostgreSQL only: the URL of the role that owns the tables (for loading rows directly).
    pub owner_url: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary with a fresh data directory named after `bench`, on PostgreSQL when
    /// `INFRAPILOT_TEST_PG_ADMIN_URL` is set, and waits until both endpoints listen.
    pub async fn start(bench: &str) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "infrapilot-{bench}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let master: [u8; 32] = rand::random();
        let http_port = free_port();
        let agent_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_infrapilot-server"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("INFRAPILOT_BIND", format!("127.0.0.1:{http_port}"))
            .env("INFRAPILOT_AGENT_BIND", format!("127.0.0.1:{agent_port}"))
            .env("INFRAPILOT_DATA_DIR", &dir)
            .env(
                "INFRAPILOT_SECRET_KEY",
                base64::engine::general_purpose::STANDARD.encode(master),
            )
            .env("INFRAPILOT_ACCESS_TOKEN_TTL_SECS", "7200")
            .env("INFRAPILOT_DOCKER_SOCKET", "/nonexistent/docker.sock")
            .env("INFRAPILOT_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(dir.join("server.log")).unwrap())
            .stderr(Stdio::inherit());
        let mut owner_url = None;
        let database = if std::env::var_os("INFRAPILOT_TEST_PG_ADMIN_URL").is_some() {
            let db = infrapilot_server::testing::postgres_config().await;
            command.env("DATABASE_URL", db.url);
            let migration_url = db.migration_url.unwrap();
            command.env("DATABASE_MIGRATION_URL", &migration_url);
            owner_url = Some(migration_url);
            "postgresql"
        } else {
            "sqlite"
        };
        let child = command.spawn().expect("the server binary starts");
        let server = Server {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            agent_endpoint: AgentEndpoint::parse(&format!("https://127.0.0.1:{agent_port}"))
                .unwrap(),
            setup_code: Keys::from_master(&master).setup_code().to_owned(),
            database,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            owner_url,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = server
                .client
                .get(format!("{}/readyz", server.http))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready
                && tokio::net::TcpStream::connect(("127.0.0.1", agent_port))
                    .await
                    .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start; see {}",
                dir.join("server.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.pid())).unwrap_or_default()
    }

    /// Resident set size, KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(&self.proc_file("status"), "VmRSS:")
    }

    pub fn fd_limit(&self) -> String {
        self.proc_file("limits")
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or("?")
            .to_owned()
    }

    /// User plus system CPU time, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(&self.proc_file("stat"))
    }

    /// `GET path` with `token`; panics on a failure status.
    pub async fn get(&self, path: &str, token: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.http))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Value {
        let mut request = self.client.post(format!("{}{path}", self.http)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    pub async fn admin_token(&self) -> String {
        self.post(
            "/api/v1/setup",
            None,
            json!({
                "setup_code": self.setup_code, "email": "bench@example.com", "name": "Bench",
                "password": PASSWORD, "organization_name": "Bench",
            }),
        )
        .await;
        let login = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": "bench@example.com", "password": PASSWORD}),
            )
            .await;
        login["session"]["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The agent streams the server holds, from its `/metrics`.
    pub async fn held(&self) -> usize {
        let text = self
            .client
            .get(format!("{}/metrics", self.http))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("infrapilot_agents_connected "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("/metrics reports infrapilot_agents_connected") as usize
    }

    /// The agents the API shows online, page by page.
    pub async fn online(&self, token: &str) -> usize {
        let mut online = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/api/v1/agents?limit=200", self.http);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = self
                .client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            online += page["items"]
                .as_array()
                .expect("a page of agents")
                .iter()
                .filter(|a| a["status"] == "online")
                .count();
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return online,
            }
        }
    }
}

pub fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// User plus system CPU time in clock ticks, from the text of `/proc/<pid>/stat`.
pub fn cpu_ticks(stat: &str) -> u64 {
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    tick(11) + tick(12)
}
