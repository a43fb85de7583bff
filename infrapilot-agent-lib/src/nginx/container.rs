//! nginx in a container the agent manages (`infrapilot-nginx` by default).
//!
//! The agent keeps nginx's files where it keeps them for the host's nginx (conf, certificates,
//! htpasswd files, the ACME webroot, logs, temp files: every directory of the layout, under one
//! root) and bind-mounts that root into the container **at the same path**, so the rendered
//! configuration names the same files on both sides and the log tailer reads what nginx
//! writes. The container runs `nginx -c <conf>/nginx.conf -g 'daemon off;'` with restart policy
//! `unless-stopped`: nginx keeps serving if the agent stops, and comes back after a reboot.
//!
//! - `nginx -t` and `nginx -s reload` run inside the running container (`docker exec`); before
//!   it runs, the test runs in a throwaway container of the same image and mounts.
//! - The container is created when missing, and **adopted** when it exists and carries the
//!   agent's label (made by an earlier agent, or before the state directory was lost). One
//!   created from other settings (image, root, ports) or an older build of the image is
//!   replaced. A container of that name the agent did not create is never touched: the apply
//!   fails and says so.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, LogsOptions,
    RemoveContainerOptions, StartContainerOptions, StopContainerOptions, TopOptions,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use serde::Serialize;

use super::RunOutput;
use crate::docker::error::is_not_found;

/// The name of the container the agent manages unless told otherwise.
pub const DEFAULT_CONTAINER_NAME: &str = "infrapilot-nginx";
/// The image unless told otherwise (Docker's official nginx image).
pub const DEFAULT_IMAGE: &str = "nginx:stable";
/// The label that marks a container as the agent's; its value is the settings it was created
/// with.
pub const MANAGED_LABEL: &str = "io.infrapilot.nginx";

/// How long a start is watched for an early exit (a port already taken, a bad image).
const START_WATCH: Duration = Duration::from_millis(800);

/// The settings of the managed nginx container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSettings {
    /// The container's name.
    pub name: String,
    /// The image: any nginx image with `nginx` on its `PATH`.
    pub image: String,
    /// The directory that holds every directory of the layout, as the agent sees it; mounted
    /// at this path inside the container.
    pub root: PathBuf,
    /// The same directory as the Docker host sees it (differs when the agent itself runs in a
    /// container with the directory bind-mounted from elsewhere).
    pub host_root: PathBuf,
    /// The ports nginx listens on, each published on the same port of the host.
    pub ports: Vec<u16>,
    /// The host address the ports are published on (all addresses when `None`).
    pub bind_address: Option<String>,
    /// Labels put on the container besides the agent's own (for the operator's tooling).
    pub labels: BTreeMap<String, String>,
}

impl ContainerSettings {
    /// `name` running `image` with its files under `root` (the same path on the Docker host),
    /// publishing `ports`.
    pub fn new(
        name: impl Into<String>,
        image: impl Into<String>,
        root: PathBuf,
        ports: Vec<u16>,
    ) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            host_root: root.clone(),
            root,
            ports,
            bind_address: None,
            labels: BTreeMap::new(),
        }
    }
}

/// Drives nginx inside the managed container.
#[derive(Debug, Clone)]
pub struct NginxContainer {
    docker: Docker,
    settings: ContainerSettings,
}

/// What the agent found under the container's name.
enum Found {
    Missing,
    Foreign,
    /// The agent's, created with other settings or another image build.
    Stale,
    Current {
        running: bool,
    },
}

impl NginxContainer {
    /// The container `settings` describe, through `docker`.
    pub fn new(docker: Docker, settings: ContainerSettings) -> Self {
        Self { docker, settings }
    }

    /// The settings.
    pub fn settings(&self) -> &ContainerSettings {
        &self.settings
    }

    /// The Docker client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Whether the agent's container, as the settings want it, runs.
    pub async fn is_running(&self) -> bool {
        matches!(self.find().await, Ok(Found::Current { running: true }))
    }

    /// The container's inspect, when it exists.
    pub async fn inspect(&self) -> Option<ContainerInspectResponse> {
        self.docker
            .inspect_container(&self.settings.name, None::<InspectContainerOptions>)
            .await
            .ok()
    }

    /// The group nginx's workers in the container run as, as the Docker host sees it (`docker
    /// top`, whose `ps` runs there); `None` when the container does not run or the engine
    /// cannot list its processes.
    pub async fn worker_gid(&self) -> Option<u32> {
        let top = self
            .docker
            .top_processes(
                &self.settings.name,
                Some(TopOptions {
                    ps_args: "-o pid,ppid,gid".to_owned(),
                }),
            )
            .await
            .ok()?;
        workers_gid(top.titles.as_deref()?, top.processes.as_deref()?)
    }

    /// Runs `nginx ARGS` (a test): inside the running container, or in a throwaway one.
    pub async fn run(&self, args: &[&str]) -> Result<RunOutput, String> {
        if self.is_running().await {
            return self.exec(args).await;
        }
        self.run_once(args).await
    }

    /// Reloads nginx inside the running container (`reload_args`), or creates (or replaces)
    /// and starts the container.
    pub async fn reload_or_start(&self, reload_args: &[&str]) -> Result<RunOutput, String> {
        match self.find().await? {
            Found::Current { running: true } => return self.exec(reload_args).await,
            Found::Current { running: false } => {}
            Found::Foreign => {
                return Ok(failure(format!(
                    "a container named {:?} exists that InfraPilot did not create; remove or \
                     rename it, or set INFRAPILOT_NGINX_CONTAINER to another name",
                    self.settings.name
                )));
            }
            Found::Stale => {
                self.remove().await?;
                if let Some(out) = self.create().await? {
                    return Ok(out);
                }
            }
            Found::Missing => {
                if let Some(out) = self.create().await? {
                    return Ok(out);
                }
            }
        }
        if let Err(e) = self
            .docker
            .start_container(&self.settings.name, None::<StartContainerOptions>)
            .await
        {
            return Ok(failure(format!(
                "starting the container {}: {}",
                self.settings.name,
                docker_message(e)
            )));
        }
        // nginx exits at once when it cannot start (a port taken inside, a missing file).
        tokio::time::sleep(START_WATCH).await;
        match self.inspect().await {
            Some(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => Ok(RunOutput {
                success: true,
                output: String::new(),
            }),
            _ => Ok(failure(format!(
                "the container {} stopped right after it started: {}",
                self.settings.name,
                self.logs().await
            ))),
        }
    }

    /// Stops the container (nginx quits gracefully on SIGQUIT), if it runs.
    pub async fn stop(&self) -> Result<RunOutput, String> {
        if !self.is_running().await {
            return Ok(RunOutput {
                success: true,
                output: String::new(),
            });
        }
        let options = StopContainerOptions {
            signal: Some("SIGQUIT".to_owned()),
            t: Some(10),
        };
        match self
            .docker
            .stop_container(&self.settings.name, Some(options))
            .await
        {
            Ok(()) => Ok(RunOutput {
                success: true,
                output: String::new(),
            }),
            Err(e) => Ok(failure(docker_message(e))),
        }
    }

    /// The label value that records the settings a container was created with.
    fn fingerprint(&self) -> String {
        serde_json::to_string(&self.settings).unwrap_or_default()
    }

    async fn find(&self) -> Result<Found, String> {
        let container = match self
            .docker
            .inspect_container(&self.settings.name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(Found::Missing),
            Err(e) => return Err(docker_message(e)),
        };
        let label = container
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(MANAGED_LABEL));
        let Some(label) = label else {
            return Ok(Found::Foreign);
        };
        let image_id = self
            .docker
            .inspect_image(&self.settings.image)
            .await
            .ok()
            .and_then(|i| i.id);
        let same_image = image_id.is_none() || image_id == container.image;
        if *label != self.fingerprint() || !same_image {
            return Ok(Found::Stale);
        }
        let running = container.state.as_ref().and_then(|s| s.running) == Some(true);
        Ok(Found::Current { running })
    }

    /// Creates the container (pulling the image when it is not here); `Some` is a failure to
    /// report.
    async fn create(&self) -> Result<Option<RunOutput>, String> {
        if let Some(out) = self.ensure_image().await {
            return Ok(Some(out));
        }
        let s = &self.settings;
        let mut labels: HashMap<String, String> = s.labels.clone().into_iter().collect();
        labels.insert(MANAGED_LABEL.to_owned(), self.fingerprint());
        let mut exposed = HashMap::new();
        let mut bindings = HashMap::new();
        for port in &s.ports {
            let key = format!("{port}/tcp");
            exposed.insert(key.clone(), HashMap::new());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: s.bind_address.clone(),
                    host_port: Some(port.to_string()),
                }]),
            );
        }
        let main = s.root.join("conf/nginx.conf").display().to_string();
        let error_log = s.root.join("logs/error.log").display().to_string();
        let body = ContainerCreateBody {
            image: Some(s.image.clone()),
            cmd: Some(
                ["nginx", "-c", &main, "-e", &error_log, "-g", "daemon off;"]
                    .iter()
                    .map(|a| (*a).to_owned())
                    .collect(),
            ),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            stop_signal: Some("SIGQUIT".to_owned()),
            host_config: Some(HostConfig {
                binds: Some(vec![format!(
                    "{}:{}",
                    s.host_root.display(),
                    s.root.display()
                )]),
                port_bindings: Some(bindings),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(s.name.clone()),
            platform: String::new(),
        };
        match self.docker.create_container(Some(options), body).await {
            Ok(_) => {
                tracing::info!(container = %s.name, image = %s.image, "created the nginx container");
                Ok(None)
            }
            Err(e) => Ok(Some(failure(format!(
                "creating the container {}: {}",
                s.name,
                docker_message(e)
            )))),
        }
    }

    /// Pulls the image unless it is here; `Some` is the failure.
    async fn ensure_image(&self) -> Option<RunOutput> {
        let image = &self.settings.image;
        if self.docker.inspect_image(image).await.is_ok() {
            return None;
        }
        let options = CreateImageOptions {
            from_image: Some(image.clone()),
            ..Default::default()
        };
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(item) = pull.next().await {
            if let Err(e) = item {
                return Some(failure(format!(
                    "the image {image} is not on this host and pulling it failed: {}",
                    docker_message(e)
                )));
            }
        }
        None
    }

    async fn remove(&self) -> Result<(), String> {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match self
            .docker
            .remove_container(&self.settings.name, Some(options))
            .await
        {
            Ok(()) => {
                tracing::info!(container = %self.settings.name, "replaced the nginx container (its settings or image changed)");
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(docker_message(e)),
        }
    }

    /// `nginx ARGS` in the running container: output and exit status.
    async fn exec(&self, args: &[&str]) -> Result<RunOutput, String> {
        let mut cmd = vec!["nginx".to_owned()];
        cmd.extend(args.iter().map(|a| (*a).to_owned()));
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            ..Default::default()
        };
        let id = self
            .docker
            .create_exec(&self.settings.name, options)
            .await
            .map_err(docker_message)?
            .id;
        let started = self
            .docker
            .start_exec(
                &id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(docker_message)?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = started
        {
            while let Some(chunk) = out.next().await {
                match chunk {
                    Ok(
                        LogOutput::StdErr { message }
                        | LogOutput::StdOut { message }
                        | LogOutput::Console { message },
                    ) => output.push_str(&String::from_utf8_lossy(&message)),
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(e) => return Err(docker_message(e)),
                }
            }
        }
        // The engine records the exit a moment after the output ends.
        for _ in 0..250 {
            let inspect = self
                .docker
                .inspect_exec(&id)
                .await
                .map_err(docker_message)?;
            if inspect.running != Some(true) {
                return Ok(RunOutput {
                    success: inspect.exit_code == Some(0),
                    output,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err("the engine did not record the end of nginx's run".to_owned())
    }

    /// `nginx ARGS` in a throwaway container of the same image and mounts, without a network.
    async fn run_once(&self, args: &[&str]) -> Result<RunOutput, String> {
        if let Some(out) = self.ensure_image().await {
            return Ok(out);
        }
        let s = &self.settings;
        let name = format!("{}-test-{:08x}", s.name, rand::random::<u32>());
        let mut cmd = vec!["nginx".to_owned()];
        cmd.extend(args.iter().map(|a| (*a).to_owned()));
        let body = ContainerCreateBody {
            image: Some(s.image.clone()),
            cmd: Some(cmd),
            labels: Some(s.labels.clone().into_iter().collect()),
            host_config: Some(HostConfig {
                binds: Some(vec![format!(
                    "{}:{}",
                    s.host_root.display(),
                    s.root.display()
                )]),
                network_mode: Some("none".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            platform: String::new(),
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(docker_message)?;
        let outcome = async {
            self.docker
                .start_container(&name, None::<StartContainerOptions>)
                .await
                .map_err(docker_message)?;
            let mut wait = self.docker.wait_container(
                &name,
                Some(WaitContainerOptions {
                    condition: "not-running".to_owned(),
                }),
            );
            let code = match wait.next().await {
                Some(Ok(r)) => r.status_code,
                // bollard reports a non-zero exit as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                Some(Err(e)) => return Err(docker_message(e)),
                None => -1,
            };
            Ok(RunOutput {
                success: code == 0,
                output: logs_of(&self.docker, &name).await,
            })
        }
        .await;
        let _ = self
            .docker
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        outcome
    }

    async fn logs(&self) -> String {
        logs_of(&self.docker, &self.settings.name).await
    }
}

/// The last lines a container wrote.
async fn logs_of(docker: &Docker, name: &str) -> String {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: "50".to_owned(),
        ..Default::default()
    };
    let mut out = String::new();
    let mut logs = docker.logs(name, Some(options));
    while let Some(Ok(chunk)) = logs.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    out.trim().to_owned()
}

/// The group of a process whose parent is in the container too (a worker of the master,
/// which is the container's first process), from `ps -o pid,ppid,gid` as `docker top` gives it;
/// root's group is a worker that has not switched yet.
fn workers_gid(titles: &[String], processes: &[Vec<String>]) -> Option<u32> {
    let column = |name: &str| titles.iter().position(|t| t.eq_ignore_ascii_case(name));
    let (pid, ppid, gid) = (column("PID")?, column("PPID")?, column("GID")?);
    let pids: Vec<&str> = processes
        .iter()
        .filter_map(|p| p.get(pid).map(String::as_str))
        .collect();
    processes
        .iter()
        .filter(|p| {
            p.get(ppid)
                .is_some_and(|parent| pids.contains(&parent.as_str()))
        })
        .filter_map(|p| p.get(gid)?.parse().ok())
        .find(|gid| *gid != 0)
}

fn failure(output: String) -> RunOutput {
    RunOutput {
        success: false,
        output,
    }
}

fn docker_message(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(rows: &[[&str; 3]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
            .collect()
    }

    #[test]
    fn the_workers_group_is_read_from_docker_top() {
        let titles: Vec<String> = ["PID", "PPID", "GID"].map(str::to_owned).to_vec();
        // The master (its parent is the shim, outside the container), two workers.
        let running = rows(&[
            ["4100", "4080", "0"],
            ["4121", "4100", "101"],
            ["4122", "4100", "101"],
        ]);
        assert_eq!(workers_gid(&titles, &running), Some(101));
        // A worker just forked still has root's group: the others answer.
        let forking = rows(&[
            ["4100", "4080", "0"],
            ["4123", "4100", "0"],
            ["4121", "4100", "101"],
        ]);
        assert_eq!(workers_gid(&titles, &forking), Some(101));
        // Only the master (workers not started yet): no answer rather than root's group.
        assert_eq!(workers_gid(&titles, &rows(&[["4100", "4080", "0"]])), None);
        // Columns in another order are found by their titles.
        let other: Vec<String> = ["GID", "PID", "PPID"].map(str::to_owned).to_vec();
        let reordered = rows(&[["0", "7", "1"], ["65534", "8", "7"]]);
        assert_eq!(workers_gid(&other, &reordered), Some(65534));
        // An answer without a GID column says nothing.
        let no_gid: Vec<String> = ["PID", "PPID", "CMD"].map(str::to_owned).to_vec();
        assert_eq!(workers_gid(&no_gid, &running), None);
    }
}
