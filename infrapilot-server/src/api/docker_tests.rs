//! The Docker API end to end: the real router on a real socket, the community built-in agent,
//! and the machine's Docker engine. Test containers come from the image the agent library's
//! test support builds (no registry), carry the label `infrapilot.test=<run>`, and are removed
//! afterwards.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::http_tests_support::{bootstrap, call};
use crate::AppState;
use crate::config::Edition;
use crate::testing::{self, Kind};

/// Runs the docker CLI; panics with its output when it fails.
pub(super) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes everything labeled with this run's label when dropped, even after a failed assert.
struct Cleanup {
    label: String,
    projects: Vec<(String, std::path::PathBuf)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (project, file) in &self.projects {
            let _ = Command::new("docker-compose")
                .args(["-p", project, "-f"])
                .arg(file)
                .args(["down", "-t", "0"])
                .output();
        }
        let filter = format!("label=infrapilot.test={}", self.label);
        if let Ok(out) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
        if let Ok(out) = Command::new("docker")
            .args(["network", "ls", "-q", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["network", "rm", id]).output();
            }
        }
    }
}

struct Env {
    state: AppState,
    admin: String,
    agent: String,
    addr: SocketAddr,
    image: String,
    run: String,
    _cleanup: Cleanup,
}

impl Env {
    async fn new() -> Env {
        let image = infrapilot_agent_lib::testing::ensure_test_image()
            .await
            .expect("build the test image");
        let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
        let (admin, _) = bootstrap(&state).await;
        tokio::spawn(crate::agents::builtin::run(
            state.clone(),
            "/var/run/docker.sock".into(),
        ));
        let mut agent = None;
        for _ in 0..100 {
            let list = call(&state, "GET", "/api/v1/agents", Some(&admin), None, None).await;
            if let Some(a) = list.body["items"].as_array().and_then(|a| a.first())
                && a["status"] == "online"
            {
                agent = Some(a["id"].as_str().unwrap().to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = crate::app(state.clone());
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        let run = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        Env {
            state,
            admin,
            agent: agent.expect("the built-in agent comes online"),
            addr,
            image,
            _cleanup: Cleanup {
                label: run.clone(),
                projects: Vec::new(),
            },
            run,
        }
    }

    fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.run)
    }

    /// Starts a labeled container from the test image; returns its name.
    fn container(&self, what: &str, extra: &[&str], cmd: &[&str]) -> String {
        let name = self.name(what);
        let label = format!("infrapilot.test={}", self.run);
        let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
        args.extend_from_slice(extra);
        args.push(&self.image);
        args.extend_from_slice(cmd);
        docker(&args);
        name
    }

    async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> super::http_tests_support::Reply {
        let uri = format!("/api/v1/agents/{}{path}", self.agent);
        call(&self.state, method, &uri, Some(&self.admin), None, body).await
    }

    /// `GET`/`POST`… on an organization-wide path (not under the agent) as the admin.
    async fn org_api(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> super::http_tests_support::Reply {
        call(&self.state, method, path, Some(&self.admin), None, body).await
    }

    /// Creates a policy from a template; returns its id.
    async fn policy(&self, body: Value) -> String {
        let r = self
            .org_api("POST", "/api/v1/policies/from-template", Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        r.body["policy"]["id"].as_str().unwrap().to_owned()
    }

    /// The recorded violations as (action, `field`) pairs.
    async fn violations(&self, field: &str) -> Vec<(String, String)> {
        let r = self.org_api("GET", "/api/v1/policy-violations", None).await;
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["action"].as_str().unwrap().to_owned(),
                    v[field].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The newest audit entries.
    async fn audit(&self, limit: u32) -> Vec<Value> {
        let r = self
            .org_api("GET", &format!("/api/v1/audit?limit={limit}"), None)
            .await;
        r.body["items"].as_array().unwrap().clone()
    }

    async fn ws(
        &self,
        path: &str,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
    {
        self.ws_as(path, &self.admin).await
    }

    /// A WebSocket under the agent, opened with `token`.
    async fn ws_as(
        &self,
        path: &str,
        token: &str,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
    {
        let url = format!("ws://{}/api/v1/agents/{}{path}", self.addr, self.agent);
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket connects");
        socket
    }
}

/// Reads frames until the terminal's exit frame.
async fn exit_frame(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let v = next_text(socket).await;
        if v["type"] == "exit" {
            return v;
        }
    }
}

async fn next_text(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a frame within 20 s")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_lifecycle_logs_exec_and_errors() {
    let env = Env::new().await;
    let web = env.container(
        "web",
        &[
            "-e",
            "API_SECRET=hunter2",
            "--restart",
            "unless-stopped",
            "-p",
            "127.0.0.1::8080",
        ],
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
    );

    // The list shows it with its labels, ports and restart count; the detail names the
    // environment variables but never their values.
    let r = env.api("GET", "/containers", None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let listed = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == web.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(listed["state"], "running");
    assert_eq!(listed["labels"]["infrapilot.test"], env.run.as_str());
    assert_eq!(listed["restart_count"], 0);
    assert_eq!(listed["ports"][0]["private_port"], 8080, "{listed}");
    let r = env.api("GET", &format!("/containers/{web}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        r.body["config"]["env_names"]
            .as_array()
            .unwrap()
            .contains(&json!("API_SECRET")),
        "{r:?}"
    );
    assert!(
        !r.body.to_string().contains("hunter2"),
        "an environment value left the host"
    );
    assert_eq!(r.body["host_config"]["restart_policy"], "unless-stopped");

    // Stop, start, restart; each is audited.
    let r = env
        .api("POST", &format!("/containers/{web}/stop?timeout=1"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["result"]["state"], "exited", "{r:?}");
    let r = env
        .api("POST", &format!("/containers/{web}/start"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["result"]["state"], "running");
    let r = env
        .api(
            "POST",
            &format!("/containers/{web}/restart?timeout=1"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    // Logs: the last lines with timestamps, then a live follow.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = env
        .api("GET", &format!("/containers/{web}/logs?tail=3"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let lines = r.body["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert!(lines[0]["line"].as_str().unwrap().starts_with("tick "));
    assert!(lines[0]["timestamp"].is_string());
    let mut follow = env.ws(&format!("/containers/{web}/logs/ws?tail=1")).await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let batch = next_text(&mut follow).await;
        for line in batch.as_array().expect("a batch of lines") {
            seen.push(line["line"].as_str().unwrap().to_owned());
        }
    }
    let numbers: Vec<u64> = seen
        .iter()
        .map(|l| l.trim_start_matches("tick ").parse().unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "lines arrive in order as written: {seen:?}"
    );
    follow.close(None).await.unwrap();

    // One-shot exec with captured output and exit code.
    let r = env
        .api(
            "POST",
            &format!("/containers/{web}/exec"),
            Some(json!({
                "cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"],
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["result"]["exit_code"], 3);
    assert_eq!(r.body["result"]["stdout"], "out\n");
    assert_eq!(r.body["result"]["stderr"], "err\n");
    let r = env
        .api(
            "POST",
            &format!("/containers/{web}/exec"),
            Some(json!({"cmd": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");

    // An interactive terminal with a TTY: input, resize, output, exit code.
    let mut term = env.ws(&format!("/containers/{web}/exec/ws")).await;
    term.send(Message::Text(
        json!({"cmd": ["sh"], "tty": true, "rows": 24, "cols": 80})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_text(&mut term).await["type"], "started");
    term.send(Message::Text(
        json!({"type": "resize", "rows": 40, "cols": 120})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    term.send(Message::Binary(
        b"stty size; echo hi-$((40+2))\n".to_vec().into(),
    ))
    .await
    .unwrap();
    let mut output = String::new();
    while !output.contains("hi-42") {
        let frame = tokio::time::timeout(Duration::from_secs(20), term.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Binary(bytes) = frame {
            assert_eq!(bytes[0], 1, "TTY output is stdout");
            output.push_str(&String::from_utf8_lossy(&bytes[1..]));
        }
    }
    assert!(
        output.contains("40 120"),
        "the resize reached the TTY: {output:?}"
    );
    term.send(Message::Binary(b"exit 7\n".to_vec().into()))
        .await
        .unwrap();
    let exit = exit_frame(&mut term).await;
    assert_eq!(exit["exit_code"], 7, "{exit}");

    // Docker's own errors with the right status.
    let r = env
        .api("POST", "/containers/no-such-container-here/start", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-container-here"),
        "Docker's message: {r:?}"
    );
    assert_eq!(r.content_type, "application/problem+json");
    let r = env.api("DELETE", &format!("/containers/{web}"), None).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "confirmation required: {r:?}"
    );
    let r = env
        .api("DELETE", &format!("/containers/{web}?confirm=wrong"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let r = env
        .api("DELETE", &format!("/containers/{web}?confirm={web}"), None)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "running, no force: {r:?}");
    let r = env
        .api(
            "DELETE",
            &format!("/containers/{web}?confirm={web}&force=true"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = env.api("GET", &format!("/containers/{web}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A crash-looping container shows its restarts.
    let crash = env.container(
        "crash",
        &["--restart", "on-failure:5"],
        &["sh", "-c", "echo boom; exit 1"],
    );
    let mut restarts = 0;
    for _ in 0..100 {
        let r = env.api("GET", &format!("/containers/{crash}"), None).await;
        restarts = r.body["summary"]["restart_count"].as_u64().unwrap_or(0);
        if restarts >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(restarts >= 2, "restart count grows: {restarts}");

    // Every action is in the audit log.
    let audit = Value::from(env.audit(200).await).to_string();
    for action in [
        "container.stop",
        "container.start",
        "container.restart",
        "container.exec",
        "container.delete",
    ] {
        assert!(audit.contains(action), "{action} is audited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_networks_images_and_volumes() {
    let mut env = Env::new().await;
    // A compose project of two services.
    let dir = std::env::temp_dir().join(env.name("compose"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            "version: '3'\nservices:\n  web:\n    image: {img}\n    command: [\"sleep\", \"3600\"]\n    labels: {{infrapilot.test: \"{run}\"}}\n  worker:\n    image: {img}\n    command: [\"sleep\", \"3600\"]\n    labels: {{infrapilot.test: \"{run}\"}}\n",
            img = env.image,
            run = env.run
        ),
    )
    .unwrap();
    let project = env.name("shop");
    env._cleanup.projects.push((project.clone(), file.clone()));
    let up = Command::new("docker-compose")
        .args(["-p", &project, "-f"])
        .arg(&file)
        .args(["up", "-d"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let stack = |body: &Value| {
        body.as_array()
            .unwrap()
            .iter()
            .find(|s| s["project"] == project.as_str())
            .cloned()
    };
    let r = env.api("GET", "/stacks", None).await;
    let s = stack(&r.body).expect("the project is listed");
    assert_eq!(
        (s["running"].as_u64(), s["total"].as_u64()),
        (Some(2), Some(2)),
        "{s}"
    );
    assert_eq!(s["services"], json!(["web", "worker"]));
    let r = env
        .api("POST", &format!("/stacks/{project}/stop"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        r.body["result"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{r:?}"
    );
    let s = stack(&env.api("GET", "/stacks", None).await.body).unwrap();
    assert_eq!(s["running"], 0);
    let r = env
        .api("POST", &format!("/stacks/{project}/start"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let s = stack(&env.api("GET", "/stacks", None).await.body).unwrap();
    assert_eq!(s["running"], 2);
    let r = env
        .api("POST", &format!("/stacks/{project}/explode"), None)
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = env.api("POST", "/stacks/no-such-project/start", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Networks: connect and disconnect, and every refusal with its reason.
    let net = env.name("net");
    docker(&[
        "network",
        "create",
        "--label",
        &format!("infrapilot.test={}", env.run),
        &net,
    ]);
    let app = env.container("app", &[], &["sleep", "3600"]);
    let r = env.api("GET", "/networks", None).await;
    let listed = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == net.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["connectable"], true);
    let host = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "host")
        .cloned()
        .unwrap();
    assert_eq!(host["connectable"], false);
    let r = env
        .api(
            "POST",
            &format!("/networks/{net}/connect"),
            Some(json!({"container": app, "aliases": ["api"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = env.api("GET", &format!("/networks/{net}"), None).await;
    assert!(
        r.body["containers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == app.as_str()),
        "{r:?}"
    );
    let r = env
        .api("GET", &format!("/containers/{app}/networks"), None)
        .await;
    assert!(
        r.body
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["network"] == net.as_str()
                && n["aliases"].as_array().unwrap().contains(&json!("api"))),
        "{r:?}"
    );
    for (refused, why) in [("host", "host network"), ("none", "none network")] {
        let r = env
            .api(
                "POST",
                &format!("/networks/{refused}/connect"),
                Some(json!({"container": app})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{refused}: {r:?}");
        assert!(r.body["detail"].as_str().unwrap().contains(why), "{r:?}");
    }
    let r = env
        .api(
            "POST",
            &format!("/networks/{net}/disconnect"),
            Some(json!({"container": app})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = env.api("GET", &format!("/networks/{net}"), None).await;
    assert!(r.body["containers"].as_array().unwrap().is_empty(), "{r:?}");

    // Images and volumes: list and inspect; removal and pruning need confirmation.
    let r = env.api("GET", "/images", None).await;
    assert!(
        r.body
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["tags"].as_array().unwrap().contains(&json!(env.image))),
        "{r:?}"
    );
    let encoded = env.image.replace('/', "%2F");
    let r = env.api("GET", &format!("/images/{encoded}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = env.api("DELETE", &format!("/images/{encoded}"), None).await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "in use by containers: {r:?}"
    );
    let vol = env.name("vol");
    docker(&[
        "volume",
        "create",
        "--label",
        &format!("infrapilot.test={}", env.run),
        &vol,
    ]);
    let r = env.api("GET", &format!("/volumes/{vol}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["labels"]["infrapilot.test"], env.run.as_str());
    let r = env.api("DELETE", &format!("/volumes/{vol}"), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = env
        .api("DELETE", &format!("/volumes/{vol}?confirm={vol}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = env.api("GET", &format!("/volumes/{vol}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = env
        .api("POST", "/images/prune", Some(json!({"confirm": "yes"})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_block_warn_and_audit_docker_actions() {
    let env = Env::new().await;
    env.policy(json!({"template": {"template": "no_privileged_containers"}}))
        .await;
    env.policy(json!({"template": {"template": "require_restart_policy"}}))
        .await;
    env.policy(json!({"template": {"template": "no_latest_tag"}, "action": "audit"}))
        .await;
    env.policy(
        json!({"template": {"template": "no_exec_production", "environments": ["production"]}}),
    )
    .await;

    // Block: a privileged container does not start, and the violation is recorded.
    // (Created, not run: this sandbox cannot run privileged containers, and a blocked start
    // must not need to.)
    let privileged = env.name("priv");
    docker(&[
        "create",
        "--name",
        &privileged,
        "--label",
        &format!("infrapilot.test={}", env.run),
        "--privileged",
        "--restart",
        "always",
        &env.image,
        "sleep",
        "3600",
    ]);
    let r = env
        .api("POST", &format!("/containers/{privileged}/start"), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(r.body["violations"][0]["action"], "block", "{r:?}");
    assert!(
        r.body["detail"].as_str().unwrap().contains("privileged"),
        "{r:?}"
    );
    let state = docker(&["inspect", "-f", "{{.State.Status}}", &privileged]);
    assert_eq!(state, "created", "a blocked start changes nothing");

    // Warn: no restart policy → it starts, with the warning in the response.
    let plain = env.container("plain", &[], &["sleep", "3600"]);
    docker(&["stop", "-t", "0", &plain]);
    let r = env
        .api("POST", &format!("/containers/{plain}/start"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let warnings = r.body["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{r:?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("restart policy"),
        "{r:?}"
    );

    // Audit: the test image's tag is pinned, so a `latest` tag is needed to fire it.
    let latest = env
        .image
        .rsplit_once(':')
        .map(|(repo, _)| format!("{repo}:latest"))
        .unwrap();
    docker(&["tag", &env.image, &latest]);
    let silent = env.name("silent");
    docker(&[
        "run",
        "-d",
        "--name",
        &silent,
        "--restart",
        "always",
        "--label",
        &format!("infrapilot.test={}", env.run),
        &latest,
        "sleep",
        "3600",
    ]);
    let r = env
        .api(
            "POST",
            &format!("/containers/{silent}/restart?timeout=0"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        r.body["warnings"].as_array().unwrap().is_empty(),
        "audit is silent: {r:?}"
    );

    let actions = env.violations("resource").await;
    assert!(
        actions.contains(&("block".to_owned(), privileged.clone())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("warn".to_owned(), plain.clone())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("audit".to_owned(), silent.clone())),
        "{actions:?}"
    );
    // Untag (the container keeps the image).
    docker(&["rmi", &latest]);

    // Exec on a production agent is blocked, one-shot and interactive.
    let r = call(
        &env.state,
        "PATCH",
        &format!("/api/v1/agents/{}", env.agent),
        Some(&env.admin),
        None,
        Some(json!({
            "labels": {"env": "production", "infrapilot.builtin": "true"},
        })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = env
        .api(
            "POST",
            &format!("/containers/{plain}/exec"),
            Some(json!({"cmd": ["true"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(
        r.body["type"],
        "https://infrapilot.dev/problems/policy-blocked"
    );
    let mut term = env.ws(&format!("/containers/{plain}/exec/ws")).await;
    term.send(Message::Text(
        json!({"cmd": ["sh"], "tty": true}).to_string().into(),
    ))
    .await
    .unwrap();
    let refused = next_text(&mut term).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["problem"]["status"], 403, "{refused}");

    let entries = env.audit(200).await;
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "container.start" && e["outcome"] == "denied"),
        "blocked starts are audited as denied"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "container.exec" && e["outcome"] == "denied")
    );
}

#[tokio::test]
async fn an_offline_agent_answers_503() {
    let state = testing::app_state(Kind::Sqlite, Edition::Community).await;
    let (admin, org) = bootstrap(&state).await;
    let agent = testing::insert_agent(&state, org.parse().unwrap(), "gone").await;
    let r = call(
        &state,
        "GET",
        &format!("/api/v1/agents/{agent}/containers"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{r:?}");
    assert!(
        r.body["detail"].as_str().unwrap().contains("offline"),
        "{r:?}"
    );
    assert_eq!(r.content_type, "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_log_windows_and_prune() {
    let env = Env::new().await;
    let talker = env.container(
        "talker",
        &[],
        &["sh", "-c", "echo first; sleep 2; echo second; sleep 3600"],
    );

    // One sample, then a live stream of samples.
    let r = env
        .api("GET", &format!("/containers/{talker}/stats"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.body["pids"].as_u64().unwrap() >= 1, "{r:?}");
    assert!(r.body["memory_bytes"].as_u64().unwrap() > 0, "{r:?}");
    let mut stats = env.ws(&format!("/containers/{talker}/stats/ws")).await;
    let mut reads = Vec::new();
    while reads.len() < 2 {
        let frame = next_text(&mut stats).await;
        assert!(frame["cpu_percent"].is_number(), "{frame}");
        assert!(frame["pids"].as_u64().unwrap() >= 1, "{frame}");
        reads.push(frame["read"].as_str().unwrap().to_owned());
    }
    assert_ne!(reads[0], reads[1], "each frame is a new sample");
    stats.close(None).await.unwrap();

    // A time window: `until` one second past the first line leaves out the second, and
    // `since` at the second line leaves out the first.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = env
        .api("GET", &format!("/containers/{talker}/logs"), None)
        .await;
    let lines = r.body["lines"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 2, "{r:?}");
    let unix = |line: &Value| {
        time::OffsetDateTime::parse(
            line["timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp()
    };
    let until = unix(&lines[0]) + 1;
    let r = env
        .api(
            "GET",
            &format!("/containers/{talker}/logs?until={until}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let only: Vec<&str> = r.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(only, ["first"], "{r:?}");
    let since = unix(&lines[1]);
    let r = env
        .api(
            "GET",
            &format!("/containers/{talker}/logs?since={since}"),
            None,
        )
        .await;
    let only: Vec<&str> = r.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(only, ["second"], "{r:?}");
    let r = env
        .api(
            "GET",
            &format!("/containers/{talker}/logs?since={since}&until={since}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.body.to_string().contains("until"), "{r:?}");

    // Pruning unused volumes (named ones too), limited to this test's label: ours goes, one
    // in use stays.
    let label = format!("infrapilot.test={}", env.run);
    let unused = env.name("unused");
    let used = env.name("used");
    for vol in [&unused, &used] {
        docker(&["volume", "create", "--label", &label, vol]);
    }
    env.container(
        "user",
        &["-v", &format!("{used}:/data")],
        &["sleep", "3600"],
    );
    let r = env
        .api(
            "POST",
            "/volumes/prune",
            Some(json!({"confirm": "prune", "all": true, "labels": {"infrapilot.test": env.run}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let deleted: Vec<&str> = r.body["result"]["deleted"]
        .as_array()
        .or_else(|| r.body["deleted"].as_array())
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(deleted, [unused.as_str()], "{r:?}");
    let r = env.api("GET", &format!("/volumes/{used}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "the volume in use stays: {r:?}");
    let audit = Value::from(env.audit(50).await).to_string();
    assert!(audit.contains("volume.prune"), "pruning is audited");
    docker(&["rm", "-f", &env.name("user")]);
    docker(&["volume", "rm", &used]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_warns_or_audits_and_a_start_is_audited() {
    let env = Env::new().await;
    let r = call(
        &env.state,
        "PATCH",
        &format!("/api/v1/agents/{}", env.agent),
        Some(&env.admin),
        None,
        Some(json!({"labels": {"env": "staging", "infrapilot.builtin": "true"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let box_ = env.container("box", &["--restart", "always"], &["sleep", "3600"]);

    // Warn: exec goes ahead, one-shot and interactive, with the warning beside the result.
    let warn = env
        .policy(json!({
            "template": {"template": "no_exec_production", "environments": ["staging"]},
            "action": "warn",
        }))
        .await;
    let r = env
        .api(
            "POST",
            &format!("/containers/{box_}/exec"),
            Some(json!({"cmd": ["echo", "through"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["result"]["stdout"], "through\n", "{r:?}");
    assert_eq!(r.body["warnings"].as_array().unwrap().len(), 1, "{r:?}");
    assert_eq!(r.body["warnings"][0]["action"], "warn", "{r:?}");
    let mut term = env.ws(&format!("/containers/{box_}/exec/ws")).await;
    term.send(Message::Text(
        json!({"cmd": ["sh", "-c", "exit 4"], "tty": false})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let started = next_text(&mut term).await;
    assert_eq!(started["type"], "started", "{started}");
    assert_eq!(
        started["warnings"][0]["policy_id"],
        warn.as_str(),
        "{started}"
    );
    let exit = exit_frame(&mut term).await;
    assert_eq!(exit["exit_code"], 4, "{exit}");

    // Audit: silent for the caller, recorded as a violation.
    let r = env
        .org_api("DELETE", &format!("/api/v1/policies/{warn}"), None)
        .await;
    assert!(r.status.is_success(), "{r:?}");
    env.policy(json!({
        "template": {"template": "no_exec_production", "environments": ["staging"]},
        "action": "audit",
    }))
    .await;
    let r = env
        .api(
            "POST",
            &format!("/containers/{box_}/exec"),
            Some(json!({"cmd": ["true"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.body["warnings"].as_array().unwrap().is_empty(), "{r:?}");

    // Audit on start: the container has no resource limits.
    env.policy(json!({"template": {"template": "require_resource_limits"}, "action": "audit"}))
        .await;
    docker(&["stop", "-t", "0", &box_]);
    let r = env
        .api("POST", &format!("/containers/{box_}/start"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.body["warnings"].as_array().unwrap().is_empty(), "{r:?}");

    let seen = env.violations("operation").await;
    for expected in [("warn", "exec"), ("audit", "exec"), ("audit", "start")] {
        assert!(
            seen.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {seen:?}"
        );
    }
    let entries = env.audit(100).await;
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "container.exec" && e["outcome"] == "success"),
        "exec that went ahead is audited"
    );
    assert!(
        entries.iter().any(|e| e["action"] == "policy.violation"),
        "warn and audit violations are in the audit log"
    );
}

/// Every WebSocket (log follow, stats, terminal) ends with an error frame carrying the 401
/// a new request would get once the session that opened it is signed out, and the terminal
/// with a 403 once its operator is demoted to viewer (SECURITY.md,
/// class 2; the Server-Sent Events streams and every other way a session ends are enumerated
/// in `session_tests`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_end_when_their_session_is_revoked() {
    let env = Env::new().await;
    let talker = env.container(
        "talker",
        &[],
        &["sh", "-c", "while true; do echo hi; sleep 0.2; done"],
    );
    // Signed out (every WebSocket), or demoted to viewer (the terminal needs an operator).
    let cases = [
        ("logs", "logout"),
        ("stats", "logout"),
        ("exec", "logout"),
        ("exec", "demotion"),
    ];
    for (n, (kind, end)) in cases.into_iter().enumerate() {
        let email = format!("ws-{n}@example.com");
        let r = env
            .org_api(
                "POST",
                "/api/v1/users",
                Some(json!({"email": email, "name": "Operator",
                    "password": super::http_tests_support::PASSWORD, "role": "operator"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.body["id"].as_str().unwrap().to_owned();
        let token = super::http_tests_support::login(&env.state, &email).await;
        let mut socket = env
            .ws_as(&format!("/containers/{talker}/{kind}/ws"), &token)
            .await;
        if kind == "exec" {
            socket
                .send(Message::Text(json!({"cmd": ["sh"]}).to_string().into()))
                .await
                .unwrap();
            assert_eq!(next_text(&mut socket).await["type"], "started");
        } else {
            next_text(&mut socket).await;
        }
        let (r, expected) = if end == "logout" {
            let r = call(
                &env.state,
                "POST",
                "/api/v1/auth/logout",
                Some(&token),
                None,
                None,
            )
            .await;
            (r, 401)
        } else {
            let body = json!({"role": "viewer"});
            let r = env
                .org_api("PATCH", &format!("/api/v1/members/{id}"), Some(body))
                .await;
            (r, 403)
        };
        assert!(r.status.is_success(), "{end}: {r:?}");
        let error = loop {
            let v = next_text(&mut socket).await;
            if v.get("type").and_then(Value::as_str) == Some("error") {
                break v;
            }
        };
        assert_eq!(
            error["problem"]["status"], expected,
            "{kind} {end}: {error}"
        );
    }
}
