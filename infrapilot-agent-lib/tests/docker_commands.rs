//! The Docker commands against the real engine, driven through `CommandHandler::handle` as the
//! session drives them: containers, stats, logs, exec, compose stacks, networks, images,
//! volumes and error mapping. Every object is created through `testing::TestDocker`, labeled,
//! uniquely named and removed afterwards.

// Test code: a failure is a panic with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use infrapilot_agent_lib::command::{AgentInfo, BuiltinCommands, Chain, CommandHandler, Input};
use infrapilot_agent_lib::probe::DEFAULT_DOCKER_SOCKET;
use infrapilot_agent_lib::testing::{
    RunOptions, TEST_IMAGE, TestContainer, TestDocker, wait_until,
};
use infrapilot_agent_lib::{CommandError, DockerCommands, ErrorCode, HostProbe, Replies};
use infrapilot_core::docker::{
    ActionReport, ContainerDetail, ContainerSummary, ExecResult, ExecStream, ImageDetail,
    ImageSummary, LogLine, LogsPage, NetworkDetail, NetworkSummary, PruneReport, Stack,
    StackReport, StatsSample, VolumeSummary, split_exec_frame,
};
use infrapilot_proto::v1::command::Kind;
use infrapilot_proto::v1::{AgentMessage, Resize, agent_message, command_reply};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);

fn handler() -> Arc<DockerCommands> {
    let socket = PathBuf::from(DEFAULT_DOCKER_SOCKET);
    assert!(
        socket.exists(),
        "these tests need a Docker engine at {DEFAULT_DOCKER_SOCKET}; start one (CI provisions it)"
    );
    Arc::new(DockerCommands::new(Arc::new(HostProbe::new(
        "/",
        Some(socket),
    ))))
}

/// A guard for `test`, the handler, and a running container that sleeps.
async fn sleeper(test: &str) -> (TestDocker, Arc<DockerCommands>, TestContainer) {
    let docker = TestDocker::new(test).await.unwrap();
    let c = docker
        .run("sleeper", &["sleep", "3600"], RunOptions::default())
        .await
        .unwrap();
    (docker, handler(), c)
}

fn docker_kind(request: &Value) -> Kind {
    Kind::Docker(infrapilot_proto::v1::Docker {
        request_json: serde_json::to_vec(request).unwrap(),
    })
}

/// Runs a request to its reply, which must parse as `T`.
async fn call<T: DeserializeOwned>(h: &DockerCommands, request: Value) -> Result<T, CommandError> {
    let (replies, _chunks, _input) = Replies::for_test("test");
    let payload = h.handle(&docker_kind(&request), &replies).await?;
    Ok(serde_json::from_slice(&payload)
        .unwrap_or_else(|e| panic!("{request}: reply is not the expected type: {e}")))
}

async fn ok<T: DeserializeOwned>(h: &DockerCommands, request: Value) -> T {
    let shown = request.to_string();
    call(h, request)
        .await
        .unwrap_or_else(|e| panic!("{shown}: {e}"))
}

async fn err(h: &DockerCommands, request: Value) -> CommandError {
    let shown = request.to_string();
    match call::<Value>(h, request).await {
        Ok(v) => panic!("{shown} succeeded: {v}"),
        Err(e) => e,
    }
}

/// A streaming command running in its own task.
struct Streaming {
    task: JoinHandle<Result<Vec<u8>, CommandError>>,
    chunks: mpsc::Receiver<AgentMessage>,
    input: mpsc::Sender<Input>,
}

fn stream(h: &Arc<DockerCommands>, request: Value) -> Streaming {
    let (replies, chunks, input) = Replies::for_test("stream");
    let h = h.clone();
    let task = tokio::spawn(async move { h.handle(&docker_kind(&request), &replies).await });
    Streaming {
        task,
        chunks,
        input,
    }
}

impl Streaming {
    /// The next chunk, or `None` when none came within the wait.
    async fn chunk(&mut self) -> Option<Vec<u8>> {
        let message = tokio::time::timeout(WAIT, self.chunks.recv())
            .await
            .ok()??;
        match message.body {
            Some(agent_message::Body::Reply(reply)) => match reply.result {
                Some(command_reply::Result::Chunk(bytes)) => Some(bytes),
                other => panic!("not a chunk: {other:?}"),
            },
            other => panic!("not a reply: {other:?}"),
        }
    }

    /// Reads chunks until `done` holds for what was read so far (as text); panics if it does
    /// not within the wait.
    async fn read_until(&mut self, text: &mut String, done: impl Fn(&str) -> bool) {
        while !done(text) {
            let chunk = self
                .chunk()
                .await
                .unwrap_or_else(|| panic!("no more output; so far: {text:?}"));
            let (stream, data) = split_exec_frame(&chunk).unwrap();
            assert_eq!(stream, ExecStream::Stdout, "a TTY merges everything");
            text.push_str(&String::from_utf8_lossy(data));
        }
    }

    async fn send(&self, input: Input) {
        self.input.send(input).await.unwrap();
    }

    async fn finish<T: DeserializeOwned>(self) -> T {
        let payload = tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the command ends")
            .unwrap()
            .unwrap();
        serde_json::from_slice(&payload).unwrap()
    }
}

fn find<'a>(list: &'a [ContainerSummary], name: &str) -> &'a ContainerSummary {
    list.iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} is not listed"))
}

#[tokio::test]
async fn a_container_lives_through_list_inspect_stop_start_restart_and_remove() {
    let docker = TestDocker::new("lifecycle").await.unwrap();
    let h = handler();
    let project = docker.name("proj");
    let web = docker
        .run(
            "web",
            &["httpd", "-f", "-p", "8080", "-h", "/www"],
            RunOptions {
                env: vec!["SECRET_TOKEN=hunter2".into(), "MODE=test".into()],
                labels: vec![
                    ("com.docker.compose.project".into(), project.clone()),
                    ("com.docker.compose.service".into(), "web".into()),
                ],
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();

    let list: Vec<ContainerSummary> = ok(&h, json!({"op": "list_containers"})).await;
    let listed = find(&list, &web.name);
    assert_eq!(listed.id, web.id);
    assert_eq!(listed.state, "running");
    assert_eq!(listed.image, TEST_IMAGE);
    assert_eq!(listed.networks, ["bridge"]);
    let compose = listed.compose.as_ref().unwrap();
    assert_eq!(
        (compose.project.as_str(), compose.service.as_deref()),
        (project.as_str(), Some("web"))
    );
    assert_eq!(
        listed.labels.get("infrapilot.test").map(String::as_str),
        Some(docker.label().1)
    );
    assert!(listed.memory_bytes.is_some_and(|m| m > 0), "{listed:?}");
    // The second list has two CPU readings to compare.
    let list: Vec<ContainerSummary> = ok(&h, json!({"op": "list_containers"})).await;
    let cpu = find(&list, &web.name).cpu_percent;
    assert!(cpu.is_some_and(|c| c >= 0.0), "{cpu:?}");

    let detail: ContainerDetail = ok(
        &h,
        json!({"op": "inspect_container", "container": web.name}),
    )
    .await;
    assert!(detail.config.env_names.contains(&"SECRET_TOKEN".to_owned()));
    assert!(detail.config.env_names.contains(&"MODE".to_owned()));
    let shown = serde_json::to_string(&detail).unwrap();
    assert!(
        !shown.contains("hunter2"),
        "an env value left the host: {shown}"
    );
    assert_eq!(detail.config.cmd[0], "httpd");
    assert!(detail.started_at.is_some() && detail.pid.is_some());
    assert_eq!(detail.summary.id, web.id);
    assert_eq!(detail.network_attachments[0].network, "bridge");

    let stopped: ActionReport = ok(
        &h,
        json!({"op": "stop_container", "container": web.name, "timeout_secs": 1}),
    )
    .await;
    assert_eq!(
        (stopped.changed, stopped.state.as_deref()),
        (true, Some("exited"))
    );
    let again: ActionReport = ok(&h, json!({"op": "stop_container", "container": web.name})).await;
    assert!(!again.changed);
    let list: Vec<ContainerSummary> = ok(&h, json!({"op": "list_containers", "all": false})).await;
    assert!(
        list.iter().all(|c| c.id != web.id),
        "stopped is not running"
    );
    let list: Vec<ContainerSummary> = ok(&h, json!({"op": "list_containers"})).await;
    assert_eq!(find(&list, &web.name).cpu_percent, None);

    let started: ActionReport = ok(&h, json!({"op": "start_container", "container": web.id})).await;
    assert_eq!(
        (started.changed, started.state.as_deref()),
        (true, Some("running"))
    );
    let again: ActionReport = ok(&h, json!({"op": "start_container", "container": web.name})).await;
    assert_eq!(
        (again.changed, again.state.as_deref()),
        (false, Some("running"))
    );
    let restarted: ActionReport = ok(
        &h,
        json!({"op": "restart_container", "container": web.name, "timeout_secs": 1}),
    )
    .await;
    assert_eq!(restarted.state.as_deref(), Some("running"));

    let refused = err(&h, json!({"op": "remove_container", "container": web.name})).await;
    assert_eq!(refused.code, ErrorCode::Conflict, "{refused}");
    assert!(refused.message.contains("running"), "{refused}");
    let removed: ActionReport = ok(
        &h,
        json!({"op": "remove_container", "container": web.name, "force": true}),
    )
    .await;
    assert_eq!(
        (removed.id.as_str(), removed.changed),
        (web.id.as_str(), true)
    );
    let gone = err(
        &h,
        json!({"op": "inspect_container", "container": web.name}),
    )
    .await;
    assert_eq!(gone.code, ErrorCode::NotFound);
    assert!(gone.message.contains("No such container"), "{gone}");
}

#[tokio::test]
async fn a_crash_looping_container_shows_a_growing_restart_count() {
    let docker = TestDocker::new("crashloop").await.unwrap();
    let h = handler();
    let c = docker
        .run(
            "crash",
            &["sh", "-c", "echo crashing; exit 1"],
            RunOptions {
                restart: Some("always".into()),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
    let grew = wait_until(WAIT, || async {
        let list: Vec<ContainerSummary> = ok(&h, json!({"op": "list_containers"})).await;
        find(&list, &c.name).restart_count >= 2
    })
    .await;
    assert!(grew, "the restart count did not reach 2");
    let detail: ContainerDetail =
        ok(&h, json!({"op": "inspect_container", "container": c.name})).await;
    assert_eq!(detail.host_config.restart_policy, "always");
    assert!(detail.summary.restart_count >= 2);
    // Between two crashes the container runs again and Docker reports exit code 0; the
    // crash's code shows while it waits to restart.
    let crashed = wait_until(WAIT, || async {
        let d: ContainerDetail =
            ok(&h, json!({"op": "inspect_container", "container": c.name})).await;
        d.exit_code == Some(1)
    })
    .await;
    assert!(crashed, "the detail shows the crash's exit code");
}

#[tokio::test]
async fn stats_give_one_sample_or_a_stream() {
    let (_docker, h, c) = sleeper("stats").await;
    let sample: StatsSample = ok(&h, json!({"op": "stats", "container": c.name})).await;
    assert!(sample.memory_bytes > 0 && sample.memory_limit_bytes >= sample.memory_bytes);
    assert!(sample.pids >= 1 && sample.online_cpus >= 1, "{sample:?}");
    assert!(!sample.read.is_empty());

    let mut streaming = stream(
        &h,
        json!({"op": "stats", "container": c.name, "stream": true}),
    );
    for _ in 0..2 {
        let chunk = streaming.chunk().await.expect("a sample a second");
        let sample: StatsSample = serde_json::from_slice(&chunk).unwrap();
        assert!(sample.memory_bytes > 0);
    }
    // Cancelling is dropping the command.
    streaming.task.abort();
    assert!(streaming.task.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn logs_give_the_tail_and_follow_new_lines() {
    let docker = TestDocker::new("logs").await.unwrap();
    let h = handler();
    // Docker reads stdout and stderr through separate pipes: lines written in the same
    // instant to both may be logged in either order, so they are apart in time.
    let script = "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; \
                  trap 'exit 0' TERM; \
                  while true; do if [ -f /tmp/go ]; then echo late; rm /tmp/go; fi; sleep 0.2; done";
    let c = docker
        .run("talker", &["sh", "-c", script], RunOptions::default())
        .await
        .unwrap();
    let three = wait_until(WAIT, || async {
        let page: LogsPage = ok(&h, json!({"op": "logs", "container": c.name})).await;
        page.lines.len() == 3
    })
    .await;
    assert!(three, "the first lines were not logged");

    let page: LogsPage = ok(&h, json!({"op": "logs", "container": c.name})).await;
    let lines: Vec<&str> = page.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["one", "two", "three"]);
    assert_eq!(page.lines[1].stream, ExecStream::Stderr);
    assert!(page.lines.iter().all(|l| l.timestamp.is_some()));
    let last: LogsPage = ok(&h, json!({"op": "logs", "container": c.name, "tail": 1})).await;
    assert_eq!(last.lines.len(), 1);
    assert_eq!(last.lines[0].line, "three");
    let future = chrono_free_now() + 3600;
    let none: LogsPage = ok(
        &h,
        json!({"op": "logs", "container": c.name, "since": future}),
    )
    .await;
    assert!(none.lines.is_empty());
    let too_many = err(
        &h,
        json!({"op": "logs", "container": c.name, "tail": 20000}),
    )
    .await;
    assert_eq!(too_many.code, ErrorCode::Invalid);

    let mut follow = stream(
        &h,
        json!({"op": "logs", "container": c.name, "follow": true, "tail": 10}),
    );
    let mut seen: Vec<LogLine> = Vec::new();
    while seen.len() < 3 {
        let chunk = follow.chunk().await.expect("the tail arrives");
        seen.extend(serde_json::from_slice::<Vec<LogLine>>(&chunk).unwrap());
    }
    assert_eq!(seen[2].line, "three");
    // A line written after the follow began.
    let touched: ExecResult = ok(
        &h,
        json!({"op": "exec", "container": c.name, "cmd": ["touch", "/tmp/go"]}),
    )
    .await;
    assert_eq!(touched.exit_code, Some(0));
    let chunk = follow.chunk().await.expect("the new line arrives");
    let late: Vec<LogLine> = serde_json::from_slice(&chunk).unwrap();
    assert_eq!(late[0].line, "late");
    // The follow ends with the container, with an empty page.
    let _: ActionReport = ok(
        &h,
        json!({"op": "stop_container", "container": c.name, "timeout_secs": 5}),
    )
    .await;
    let end: LogsPage = follow.finish().await;
    assert!(end.lines.is_empty());
}

fn chrono_free_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::test]
async fn one_shot_exec_captures_output_and_the_exit_code() {
    let (_docker, h, c) = sleeper("exec_once").await;
    let result: ExecResult = ok(
        &h,
        json!({"op": "exec", "container": c.name,
               "cmd": ["sh", "-c", "echo out; echo err >&2; exit 7"]}),
    )
    .await;
    assert_eq!(result.exit_code, Some(7));
    assert_eq!(result.stdout, "out\n");
    assert_eq!(result.stderr, "err\n");
    assert!(!result.truncated);

    let user: ExecResult = ok(
        &h,
        json!({"op": "exec", "container": c.name, "cmd": ["sh", "-c", "id -u; pwd"],
               "user": "nobody", "workdir": "/tmp"}),
    )
    .await;
    assert_eq!(user.stdout, "65534\n/tmp\n");

    let big: ExecResult = ok(
        &h,
        json!({"op": "exec", "container": c.name,
               "cmd": ["sh", "-c", "yes | head -c 2000000"]}),
    )
    .await;
    assert!(big.truncated);
    assert_eq!(big.stdout.len(), 1 << 20);
    assert_eq!(big.exit_code, Some(0));

    let _: ActionReport = ok(
        &h,
        json!({"op": "stop_container", "container": c.name, "timeout_secs": 0}),
    )
    .await;
    let stopped = err(
        &h,
        json!({"op": "exec", "container": c.name, "cmd": ["true"]}),
    )
    .await;
    assert_eq!(stopped.code, ErrorCode::Conflict, "{stopped}");
    assert!(stopped.message.contains("not running"), "{stopped}");
}

#[tokio::test]
async fn an_interactive_tty_exec_takes_input_and_resizes_and_returns_the_exit_code() {
    let (_docker, h, c) = sleeper("exec_tty").await;
    let mut session = stream(
        &h,
        json!({"op": "exec", "container": c.name, "cmd": ["sh"], "tty": true,
               "interactive": true, "rows": 24, "cols": 80}),
    );
    let mut screen = String::new();
    session.send(Input::Stdin(b"stty size\n".to_vec())).await;
    session
        .read_until(&mut screen, |s| s.contains("24 80"))
        .await;
    session
        .send(Input::Resize(Resize {
            rows: 40,
            cols: 100,
        }))
        .await;
    session.send(Input::Stdin(b"stty size\n".to_vec())).await;
    session
        .read_until(&mut screen, |s| s.contains("40 100"))
        .await;
    session.send(Input::Stdin(b"echo hi\n".to_vec())).await;
    session
        .read_until(&mut screen, |s| s.contains("\r\nhi\r\n"))
        .await;
    session.send(Input::Stdin(b"exit 3\n".to_vec())).await;
    let result: ExecResult = session.finish().await;
    assert_eq!(result.exit_code, Some(3));
    assert!(result.stdout.is_empty(), "the output went out as chunks");
}

#[tokio::test]
async fn an_interactive_exec_without_tty_ends_when_stdin_closes() {
    let (_docker, h, c) = sleeper("exec_stdin").await;
    let mut session = stream(
        &h,
        json!({"op": "exec", "container": c.name,
               "cmd": ["sh", "-c", "echo ready >&2; cat; echo done >&2"], "interactive": true}),
    );
    // Typed once the process runs, as a person would.
    let ready = session.chunk().await.unwrap();
    assert_eq!(
        split_exec_frame(&ready),
        Some((ExecStream::Stderr, &b"ready\n"[..]))
    );
    session.send(Input::Stdin(b"abc".to_vec())).await;
    session.send(Input::CloseStdin(true)).await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(chunk) = session.chunk().await {
        match split_exec_frame(&chunk).unwrap() {
            (ExecStream::Stdout, data) => out.extend_from_slice(data),
            (ExecStream::Stderr, data) => err.extend_from_slice(data),
        }
        // The engine copies stdout and stderr separately: "done" may come before "abc".
        if err.ends_with(b"done\n") && out.len() >= 3 {
            break;
        }
    }
    assert_eq!(out, b"abc");
    assert_eq!(err, b"done\n");
    let result: ExecResult = session.finish().await;
    assert_eq!(result.exit_code, Some(0));
}

#[tokio::test]
async fn a_compose_stack_is_listed_and_stopped_and_started_as_a_whole() {
    let docker = TestDocker::new("compose").await.unwrap();
    let h = handler();
    let project = format!("ipt{:08x}", rand_suffix());
    let (label_key, label_value) = docker.label();
    let idle = r#"["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]"#;
    let web = r#"["sh", "-c", "trap 'exit 0' TERM; httpd -p 8080 -h /www; while true; do sleep 1; done"]"#;
    let file = format!(
        "version: \"2.4\"\n\
         services:\n  web:\n    image: {TEST_IMAGE}\n    command: {web}\n    labels:\n      {label_key}: \"{label_value}\"\n\
         \x20 worker:\n    image: {TEST_IMAGE}\n    command: {idle}\n    labels:\n      {label_key}: \"{label_value}\"\n\
         networks:\n  default:\n    labels:\n      {label_key}: \"{label_value}\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker-compose.yml");
    std::fs::write(&path, file).unwrap();
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .arg("-p")
            .arg(&project)
            .arg("-f")
            .arg(&path)
            .args(args)
            .output()
            .expect("docker-compose (v1) is installed; `cargo xtask provision` installs it")
    };
    let up = compose(&["up", "-d"]);
    // `down` removes what `up` made, also when the test fails; the guard removes the rest.
    struct Down<F: Fn(&[&str]) -> std::process::Output>(F);
    impl<F: Fn(&[&str]) -> std::process::Output> Drop for Down<F> {
        fn drop(&mut self) {
            let down = (self.0)(&["down", "-t", "1"]);
            if !down.status.success() {
                eprintln!(
                    "docker-compose down: {}",
                    String::from_utf8_lossy(&down.stderr)
                );
            }
        }
    }
    let _down = Down(compose);
    assert!(
        up.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let stack = |stacks: Vec<Stack>| {
        stacks
            .into_iter()
            .find(|s| s.project == project)
            .unwrap_or_else(|| panic!("{project} is not listed"))
    };
    let listed = stack(ok(&h, json!({"op": "list_stacks"})).await);
    assert_eq!((listed.running, listed.total), (2, 2));
    assert_eq!(listed.services, ["web", "worker"]);
    assert_eq!(
        listed.working_dir.as_deref(),
        Some(dir.path().to_str().unwrap())
    );

    let stopped: StackReport = ok(
        &h,
        json!({"op": "stack_action", "project": project, "action": "stop"}),
    )
    .await;
    assert_eq!(stopped.containers.len(), 2);
    assert!(stopped.containers.iter().all(|c| c.ok), "{stopped:?}");
    let listed = stack(ok(&h, json!({"op": "list_stacks"})).await);
    assert_eq!((listed.running, listed.total), (0, 2));

    let started: StackReport = ok(
        &h,
        json!({"op": "stack_action", "project": project, "action": "start"}),
    )
    .await;
    assert!(started.containers.iter().all(|c| c.ok), "{started:?}");
    let restarted: StackReport = ok(
        &h,
        json!({"op": "stack_action", "project": project, "action": "restart"}),
    )
    .await;
    assert!(restarted.containers.iter().all(|c| c.ok), "{restarted:?}");
    let listed = stack(ok(&h, json!({"op": "list_stacks"})).await);
    assert_eq!((listed.running, listed.total), (2, 2));

    let missing = err(
        &h,
        json!({"op": "stack_action", "project": format!("{project}-none"), "action": "stop"}),
    )
    .await;
    assert_eq!(missing.code, ErrorCode::NotFound);
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos ^ std::process::id().rotate_left(16)
}

#[tokio::test]
async fn containers_join_and_leave_networks_and_host_and_none_are_refused() {
    let docker = TestDocker::new("networks").await.unwrap();
    let h = handler();
    let network = docker.network("app").await.unwrap();
    let c = docker
        .run("member", &["sleep", "3600"], RunOptions::default())
        .await
        .unwrap();

    let list: Vec<NetworkSummary> = ok(&h, json!({"op": "list_networks"})).await;
    let by_name = |name: &str| list.iter().find(|n| n.name == name).unwrap().clone();
    assert!(by_name(&network).connectable);
    assert!(by_name("bridge").connectable);
    assert!(!by_name("host").connectable);
    assert!(!by_name("none").connectable);
    assert_eq!(
        by_name(&network)
            .labels
            .get("infrapilot.test")
            .map(String::as_str),
        Some(docker.label().1)
    );

    let joined: ActionReport = ok(
        &h,
        json!({"op": "connect_network", "network": network, "container": c.name,
               "aliases": ["api"]}),
    )
    .await;
    assert_eq!((joined.id.as_str(), joined.changed), (c.id.as_str(), true));
    let again: ActionReport = ok(
        &h,
        json!({"op": "connect_network", "network": network, "container": c.name}),
    )
    .await;
    assert!(!again.changed);
    let detail: NetworkDetail = ok(&h, json!({"op": "inspect_network", "network": network})).await;
    assert_eq!(detail.containers.len(), 1);
    assert_eq!(detail.containers[0].name, c.name);
    assert!(detail.containers[0].ipv4_address.is_some());
    let container: ContainerDetail =
        ok(&h, json!({"op": "inspect_container", "container": c.name})).await;
    let attachment = container
        .network_attachments
        .iter()
        .find(|a| a.network == network)
        .unwrap();
    assert!(
        attachment.aliases.contains(&"api".to_owned()),
        "{attachment:?}"
    );

    let left: ActionReport = ok(
        &h,
        json!({"op": "disconnect_network", "network": network, "container": c.name}),
    )
    .await;
    assert!(left.changed);
    let again: ActionReport = ok(
        &h,
        json!({"op": "disconnect_network", "network": network, "container": c.name}),
    )
    .await;
    assert!(!again.changed);

    for (net, reason) in [("host", "host network"), ("none", "none network")] {
        for op in ["connect_network", "disconnect_network"] {
            let refused = err(&h, json!({"op": op, "network": net, "container": c.name})).await;
            assert_eq!(refused.code, ErrorCode::Invalid, "{op} {net}: {refused}");
            assert!(refused.message.contains(reason), "{refused}");
        }
        // Refused before Docker is asked about the container.
        let refused = err(
            &h,
            json!({"op": "connect_network", "network": net, "container": "no-such-container-x"}),
        )
        .await;
        assert_eq!(refused.code, ErrorCode::Invalid);
    }
    let missing = err(
        &h,
        json!({"op": "connect_network", "network": docker.name("nonet"), "container": c.name}),
    )
    .await;
    assert_eq!(missing.code, ErrorCode::NotFound, "{missing}");
}

#[tokio::test]
async fn images_are_listed_inspected_removed_and_pruned_by_label() {
    let docker = TestDocker::new("images").await.unwrap();
    let h = handler();
    let (key, value) = docker.label();
    let labels = json!({ key: value });
    // Building the same tag twice leaves the first build dangling.
    let tag = docker.build_image("img").await.unwrap();
    let first: ImageDetail = ok(&h, json!({"op": "inspect_image", "image": tag})).await;
    docker.build_image("img").await.unwrap();
    let kept = docker.build_image("kept").await.unwrap();
    let used = docker
        .run(
            "user",
            &["/stamp"],
            RunOptions {
                image: Some(kept.clone()),
                create_only: true,
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();

    let list: Vec<ImageSummary> = ok(&h, json!({"op": "list_images"})).await;
    assert!(list.iter().any(|i| i.tags.contains(&tag)));
    let dangling = list.iter().find(|i| i.id == first.summary.id).unwrap();
    assert!(
        dangling.dangling && dangling.tags.is_empty(),
        "{dangling:?}"
    );
    assert_eq!(dangling.labels.get(key).map(String::as_str), Some(value));

    let test_image: ImageDetail = ok(&h, json!({"op": "inspect_image", "image": TEST_IMAGE})).await;
    assert_eq!(test_image.env_names, ["PATH"]);
    assert!(
        !serde_json::to_string(&test_image)
            .unwrap()
            .contains("=/bin")
    );
    assert_eq!(test_image.cmd, ["sh"]);
    assert!(test_image.layers >= 1 && test_image.summary.created > 1_600_000_000);

    let pruned: PruneReport = ok(&h, json!({"op": "prune_images", "labels": labels})).await;
    assert!(pruned.deleted.contains(&first.summary.id), "{pruned:?}");
    let kept_id = list
        .iter()
        .find(|i| i.tags.contains(&kept))
        .map(|i| i.id.clone())
        .unwrap();
    assert!(!pruned.deleted.contains(&kept_id), "{pruned:?}");

    let in_use = err(&h, json!({"op": "remove_image", "image": kept})).await;
    assert_eq!(in_use.code, ErrorCode::Conflict, "{in_use}");
    assert!(in_use.message.contains(&used.id[..12]), "{in_use}");

    let removed: PruneReport = ok(&h, json!({"op": "remove_image", "image": tag})).await;
    assert_eq!(removed.untagged, std::slice::from_ref(&tag));
    assert!(!removed.deleted.is_empty());
    let missing = err(&h, json!({"op": "remove_image", "image": tag})).await;
    assert_eq!(missing.code, ErrorCode::NotFound, "{missing}");

    // Every unused labeled image, but not the one a container uses.
    let pruned: PruneReport = ok(
        &h,
        json!({"op": "prune_images", "all": true, "labels": labels}),
    )
    .await;
    assert!(!pruned.deleted.contains(&kept_id), "{pruned:?}");
    let still: ImageDetail = ok(&h, json!({"op": "inspect_image", "image": kept})).await;
    assert!(still.summary.tags.contains(&kept));
}

#[tokio::test]
async fn volumes_are_listed_with_their_users_and_pruned_by_label() {
    let docker = TestDocker::new("volumes").await.unwrap();
    let h = handler();
    let (key, value) = docker.label();
    let labels = json!({ key: value });
    let data = docker.volume("data").await.unwrap();
    let spare = docker.volume("spare").await.unwrap();
    let c = docker
        .run(
            "user",
            &["sleep", "3600"],
            RunOptions {
                binds: vec![format!("{data}:/data")],
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();

    let list: Vec<VolumeSummary> = ok(&h, json!({"op": "list_volumes"})).await;
    let by_name = |name: &str| list.iter().find(|v| v.name == name).unwrap().clone();
    assert_eq!(by_name(&data).in_use_by, std::slice::from_ref(&c.name));
    assert!(by_name(&spare).in_use_by.is_empty());
    assert_eq!(by_name(&spare).driver, "local");
    let inspected: VolumeSummary = ok(&h, json!({"op": "inspect_volume", "volume": data})).await;
    assert_eq!(inspected.in_use_by, std::slice::from_ref(&c.name));
    assert_eq!(inspected.labels.get(key).map(String::as_str), Some(value));

    let in_use = err(&h, json!({"op": "remove_volume", "volume": data})).await;
    assert_eq!(in_use.code, ErrorCode::Conflict, "{in_use}");

    // Without `all`, named volumes stay.
    let pruned: PruneReport = ok(&h, json!({"op": "prune_volumes", "labels": labels})).await;
    assert!(pruned.deleted.is_empty(), "{pruned:?}");
    let pruned: PruneReport = ok(
        &h,
        json!({"op": "prune_volumes", "all": true, "labels": labels}),
    )
    .await;
    assert_eq!(pruned.deleted, std::slice::from_ref(&spare));

    let _: ActionReport = ok(
        &h,
        json!({"op": "remove_container", "container": c.name, "force": true}),
    )
    .await;
    let removed: ActionReport = ok(&h, json!({"op": "remove_volume", "volume": data})).await;
    assert_eq!(
        (removed.id.as_str(), removed.changed),
        (data.as_str(), true)
    );
    let missing = err(&h, json!({"op": "inspect_volume", "volume": data})).await;
    assert_eq!(missing.code, ErrorCode::NotFound, "{missing}");
}

#[tokio::test]
async fn errors_carry_dockers_message_and_a_stable_code() {
    let h = handler();
    let missing = err(
        &h,
        json!({"op": "start_container", "container": "ipt-no-such-container"}),
    )
    .await;
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert_eq!(missing.message, "No such container: ipt-no-such-container");
    let missing = err(
        &h,
        json!({"op": "logs", "container": "ipt-no-such-container"}),
    )
    .await;
    assert_eq!(missing.code, ErrorCode::NotFound);

    let (replies, _chunks, _input) = Replies::for_test("bad");
    let bad_json = Kind::Docker(infrapilot_proto::v1::Docker {
        request_json: b"{\"op\": \"start_container\", \"container\": \"a b\"}".to_vec(),
    });
    let e = h.handle(&bad_json, &replies).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Invalid);
    assert!(e.message.contains("container"), "{e}");

    let ping = Kind::Ping(infrapilot_proto::v1::Ping {
        payload: b"x".to_vec(),
    });
    assert_eq!(
        h.handle(&ping, &replies).await.unwrap_err().code,
        ErrorCode::Unsupported
    );

    // Chained behind the built-in commands, both kinds are answered.
    let probe = Arc::new(HostProbe::new("/", Some(DEFAULT_DOCKER_SOCKET.into())));
    let chain = Chain {
        first: BuiltinCommands::new(AgentInfo::of_this_host(), probe.clone()),
        second: DockerCommands::new(probe),
    };
    assert_eq!(chain.handle(&ping, &replies).await.unwrap(), b"x");
    let list = chain
        .handle(&docker_kind(&json!({"op": "list_networks"})), &replies)
        .await
        .unwrap();
    assert!(serde_json::from_slice::<Vec<NetworkSummary>>(&list).is_ok());

    let nowhere = DockerCommands::new(Arc::new(HostProbe::new(
        "/",
        Some("/nonexistent/docker.sock".into()),
    )));
    let e = err(&nowhere, json!({"op": "list_containers"})).await;
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert!(e.message.contains("/nonexistent/docker.sock"), "{e}");
}
