//! Docker's API types (bollard's) to InfraPilot's model (`infrapilot_core::docker`): pure
//! functions, so the mapping is tested without an engine.

use std::collections::{BTreeMap, HashMap};

use bollard::container::LogOutput;
use bollard::models::{
    ContainerCpuStats, ContainerInspectResponse, ContainerMemoryStats, ContainerStatsResponse,
    HealthStatusEnum, Port,
};
use infrapilot_core::docker::{
    ContainerConfigView, ContainerDetail, ContainerSummary, ExecStream, HealthcheckView,
    HostConfigView, ImageDetail, ImageSummary, LogLine, MountView, NetworkAttachment,
    NetworkDetail, NetworkMember, NetworkSummary, PortMapping, StatsSample, VolumeSummary,
    compose_ref, connectable, cpu_percent,
};

use crate::probe::{container_name, health_from_status};

/// A container from Docker's list, without what only inspect and stats tell (restart count,
/// CPU, memory).
pub(super) fn summary(c: bollard::models::ContainerSummary) -> ContainerSummary {
    let labels: BTreeMap<String, String> = c.labels.unwrap_or_default().into_iter().collect();
    let status = c.status.unwrap_or_default();
    let mut ports: Vec<PortMapping> = c.ports.unwrap_or_default().into_iter().map(port).collect();
    ports.sort_by(|a, b| {
        (a.private_port, &a.protocol, &a.ip).cmp(&(b.private_port, &b.protocol, &b.ip))
    });
    let mut networks: Vec<String> = c
        .network_settings
        .and_then(|n| n.networks)
        .map(|n| n.into_keys().collect())
        .unwrap_or_default();
    networks.sort();
    ContainerSummary {
        id: c.id.unwrap_or_default(),
        name: container_name(c.names.as_deref()),
        image: c.image.unwrap_or_default(),
        image_id: c.image_id.unwrap_or_default(),
        command: c.command.unwrap_or_default(),
        created: c.created.unwrap_or_default(),
        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
        health: non_empty(health_from_status(&status)),
        status,
        restart_count: 0,
        ports,
        compose: compose_ref(&labels),
        labels,
        cpu_percent: None,
        memory_bytes: None,
        memory_limit_bytes: None,
        networks,
    }
}

fn port(p: Port) -> PortMapping {
    PortMapping {
        private_port: p.private_port,
        public_port: p.public_port,
        ip: p.ip.filter(|ip| !ip.is_empty()),
        protocol: p
            .typ
            .map(|t| t.to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "tcp".to_owned()),
    }
}

/// Adds what inspect tells to a list entry: the restart count and the health.
pub(super) fn apply_inspect(summary: &mut ContainerSummary, inspect: &ContainerInspectResponse) {
    summary.restart_count = inspect
        .restart_count
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let health = inspect
        .state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status);
    match health {
        Some(HealthStatusEnum::STARTING) => summary.health = Some("starting".to_owned()),
        Some(HealthStatusEnum::HEALTHY) => summary.health = Some("healthy".to_owned()),
        Some(HealthStatusEnum::UNHEALTHY) => summary.health = Some("unhealthy".to_owned()),
        Some(HealthStatusEnum::NONE | HealthStatusEnum::EMPTY) | None => {}
    }
}

/// A container in detail: its list view plus inspect, environment variable names only.
pub(super) fn detail(
    summary: ContainerSummary,
    inspect: ContainerInspectResponse,
) -> ContainerDetail {
    let state = inspect.state.unwrap_or_default();
    let finished_at = state.finished_at.and_then(real_date);
    let config = inspect.config.unwrap_or_default();
    let host = inspect.host_config.unwrap_or_default();
    let restart = host.restart_policy.unwrap_or_default();
    let mut network_attachments: Vec<NetworkAttachment> = inspect
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .map(|(network, e)| NetworkAttachment {
            network,
            network_id: e.network_id.unwrap_or_default(),
            ip_address: e.ip_address.filter(|s| !s.is_empty()),
            gateway: e.gateway.filter(|s| !s.is_empty()),
            aliases: e.aliases.unwrap_or_default(),
        })
        .collect();
    network_attachments.sort_by(|a, b| a.network.cmp(&b.network));
    ContainerDetail {
        summary,
        started_at: state.started_at.and_then(real_date),
        exit_code: finished_at.as_ref().and(state.exit_code),
        finished_at,
        oom_killed: state.oom_killed.unwrap_or(false),
        pid: state.pid.filter(|p| *p > 0),
        config: ContainerConfigView {
            user: config.user.unwrap_or_default(),
            hostname: config.hostname.unwrap_or_default(),
            working_dir: config.working_dir.unwrap_or_default(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            env_names: env_names(config.env.as_deref()),
            exposed_ports: sorted_keys(config.exposed_ports),
            tty: config.tty.unwrap_or(false),
            healthcheck: config.healthcheck.map(|h| HealthcheckView {
                test: h.test.unwrap_or_default(),
                interval_secs: seconds(h.interval),
                timeout_secs: seconds(h.timeout),
                retries: h.retries,
            }),
        },
        host_config: HostConfigView {
            privileged: host.privileged.unwrap_or(false),
            network_mode: host.network_mode.unwrap_or_default(),
            restart_policy: restart
                .name
                .map(|n| n.to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "no".to_owned()),
            restart_max_retries: restart.maximum_retry_count,
            memory: host.memory.unwrap_or(0),
            nano_cpus: host.nano_cpus.unwrap_or(0),
            readonly_rootfs: host.readonly_rootfs.unwrap_or(false),
            cap_add: host.cap_add.unwrap_or_default(),
            cap_drop: host.cap_drop.unwrap_or_default(),
            pid_mode: host.pid_mode.unwrap_or_default(),
        },
        mounts: inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .map(|m| MountView {
                kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
                name: m.name.filter(|n| !n.is_empty()),
                source: m.source.unwrap_or_default(),
                destination: m.destination.unwrap_or_default(),
                rw: m.rw.unwrap_or(false),
            })
            .collect(),
        network_attachments,
    }
}

/// The names of `NAME=value` environment entries; the values are dropped here, on the host.
pub(super) fn env_names(env: Option<&[String]>) -> Vec<String> {
    env.unwrap_or_default()
        .iter()
        .map(|e| {
            e.split_once('=')
                .map_or(e.as_str(), |(name, _)| name)
                .to_owned()
        })
        .collect()
}

fn sorted_keys<V>(map: Option<HashMap<String, V>>) -> Vec<String> {
    let mut keys: Vec<String> = map.map(|m| m.into_keys().collect()).unwrap_or_default();
    keys.sort();
    keys
}

/// Nanoseconds to whole seconds; zero (Docker's "the default") is absent.
fn seconds(nanos: Option<i64>) -> Option<u64> {
    nanos
        .filter(|n| *n > 0)
        .and_then(|n| u64::try_from(n / 1_000_000_000).ok())
}

/// Docker's date, or `None` for its zero date (`0001-01-01T00:00:00Z`: never).
fn real_date(date: String) -> Option<String> {
    (!date.is_empty() && !date.starts_with("0001-")).then_some(date)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A container's CPU counters at one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuReading {
    /// The container's CPU time, nanoseconds.
    pub(super) container: u64,
    /// The host's CPU time, nanoseconds.
    pub(super) system: u64,
    /// CPUs online.
    pub(super) online: u32,
}

/// The counters of a stats reading; `None` when Docker has none (a stopped container).
pub(crate) fn cpu_reading(cpu: Option<&ContainerCpuStats>) -> Option<CpuReading> {
    let cpu = cpu?;
    let usage = cpu.cpu_usage.as_ref()?;
    let container = usage.total_usage?;
    let system = cpu.system_cpu_usage.filter(|s| *s > 0)?;
    let online = cpu
        .online_cpus
        .filter(|n| *n > 0)
        .or_else(|| {
            usage
                .percpu_usage
                .as_ref()
                .and_then(|p| u32::try_from(p.len()).ok())
        })
        .unwrap_or(1);
    Some(CpuReading {
        container,
        system,
        online,
    })
}

/// CPU percent (of one core) between two readings; `None` when the counters went backwards
/// (the container restarted) or the system's did not move.
pub(crate) fn cpu_between(before: CpuReading, after: CpuReading) -> Option<f64> {
    if after.container < before.container || after.system <= before.system {
        return None;
    }
    Some(cpu_percent(
        after.container - before.container,
        after.system - before.system,
        after.online,
    ))
}

/// Memory in use without the page cache, as `docker stats` shows it (cgroup v1:
/// `total_inactive_file`, v2: `inactive_file`).
pub(crate) fn memory_used(m: &ContainerMemoryStats) -> Option<u64> {
    let usage = m.usage?;
    let stats = m.stats.as_ref();
    let inactive = stats
        .and_then(|s| {
            s.get("total_inactive_file")
                .or_else(|| s.get("inactive_file"))
        })
        .copied()
        .filter(|v| *v < usage)
        .unwrap_or(0);
    Some(usage - inactive)
}

/// One stats reading as a sample, CPU between Docker's previous reading and this one.
pub(super) fn stats_sample(s: &ContainerStatsResponse) -> StatsSample {
    let now = cpu_reading(s.cpu_stats.as_ref());
    let before = cpu_reading(s.precpu_stats.as_ref());
    let cpu_percent = match (before, now) {
        (Some(b), Some(n)) => cpu_between(b, n).unwrap_or(0.0),
        _ => 0.0,
    };
    let memory = s.memory_stats.as_ref();
    let memory_bytes = memory.and_then(memory_used).unwrap_or(0);
    let memory_limit_bytes = memory.and_then(|m| m.limit).unwrap_or(0);
    // Precision loss past 2^53 bytes is irrelevant for a percentage.
    #[allow(clippy::cast_precision_loss)]
    let memory_percent = if memory_limit_bytes > 0 {
        memory_bytes as f64 / memory_limit_bytes as f64 * 100.0
    } else {
        0.0
    };
    let (network_rx_bytes, network_tx_bytes) = s
        .networks
        .as_ref()
        .map(|n| {
            n.values().fold((0u64, 0u64), |(rx, tx), i| {
                (
                    rx.saturating_add(i.rx_bytes.unwrap_or(0)),
                    tx.saturating_add(i.tx_bytes.unwrap_or(0)),
                )
            })
        })
        .unwrap_or_default();
    let (block_read_bytes, block_write_bytes) = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .map(|entries| {
            entries.iter().fold((0u64, 0u64), |(r, w), e| {
                let v = e.value.unwrap_or(0);
                match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("read") => (r.saturating_add(v), w),
                    Some("write") => (r, w.saturating_add(v)),
                    _ => (r, w),
                }
            })
        })
        .unwrap_or_default();
    StatsSample {
        read: s.read.clone().unwrap_or_default(),
        cpu_percent,
        online_cpus: now.map_or(0, |n| n.online),
        memory_bytes,
        memory_limit_bytes,
        memory_percent,
        network_rx_bytes,
        network_tx_bytes,
        block_read_bytes,
        block_write_bytes,
        pids: s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
    }
}

/// One log entry, read with timestamps (`<RFC 3339> <line>\n`), as a [`LogLine`].
pub(super) fn log_line(output: &LogOutput) -> LogLine {
    let (stream, message) = match output {
        LogOutput::StdErr { message } => (ExecStream::Stderr, message),
        LogOutput::StdOut { message }
        | LogOutput::StdIn { message }
        | LogOutput::Console { message } => (ExecStream::Stdout, message),
    };
    let mut bytes: &[u8] = message;
    let mut timestamp = None;
    if bytes.first().is_some_and(u8::is_ascii_digit)
        && let Some(space) = bytes.iter().position(|b| *b == b' ')
    {
        timestamp = Some(String::from_utf8_lossy(&bytes[..space]).into_owned());
        bytes = &bytes[space + 1..];
    }
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    LogLine {
        stream,
        timestamp,
        line: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A network in a list, with whether InfraPilot may attach containers to it.
pub(super) fn network_summary(n: &bollard::models::Network) -> NetworkSummary {
    let name = n.name.clone().unwrap_or_default();
    let driver = n.driver.clone().unwrap_or_default();
    let scope = n.scope.clone().unwrap_or_default();
    let attachable = n.attachable.unwrap_or(false);
    NetworkSummary {
        id: n.id.clone().unwrap_or_default(),
        connectable: connectable(&name, &driver, &scope, attachable).is_ok(),
        name,
        driver,
        scope,
        internal: n.internal.unwrap_or(false),
        attachable,
        subnets: n
            .ipam
            .as_ref()
            .and_then(|i| i.config.as_ref())
            .map(|c| c.iter().filter_map(|c| c.subnet.clone()).collect())
            .unwrap_or_default(),
        created: n.created.clone().and_then(real_date),
        labels: sorted(n.labels.clone()),
    }
}

/// A network with its containers, sorted by name.
pub(super) fn network_detail(n: bollard::models::Network) -> NetworkDetail {
    let summary = network_summary(&n);
    let mut containers: Vec<NetworkMember> = n
        .containers
        .unwrap_or_default()
        .into_iter()
        .map(|(id, c)| NetworkMember {
            id,
            name: c.name.unwrap_or_default(),
            ipv4_address: c.ipv4_address.filter(|a| !a.is_empty()),
        })
        .collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    NetworkDetail {
        summary,
        containers,
        options: sorted(n.options),
    }
}

/// An image in a list.
pub(super) fn image_summary(i: bollard::models::ImageSummary) -> ImageSummary {
    let tags: Vec<String> = i
        .repo_tags
        .into_iter()
        .filter(|t| t != "<none>:<none>")
        .collect();
    ImageSummary {
        id: i.id,
        dangling: tags.is_empty(),
        tags,
        digests: i
            .repo_digests
            .into_iter()
            .filter(|d| d != "<none>@<none>")
            .collect(),
        size: i.size,
        created: i.created,
        containers: i.containers,
        labels: i.labels.into_iter().collect(),
    }
}

/// An image in detail, environment variable names only.
pub(super) fn image_detail(i: bollard::models::ImageInspect) -> ImageDetail {
    let config = i.config.unwrap_or_default();
    let tags: Vec<String> = i
        .repo_tags
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t != "<none>:<none>")
        .collect();
    ImageDetail {
        summary: ImageSummary {
            id: i.id.unwrap_or_default(),
            dangling: tags.is_empty(),
            tags,
            digests: i.repo_digests.unwrap_or_default(),
            size: i.size.unwrap_or(0),
            created: i.created.as_deref().and_then(unix_seconds).unwrap_or(0),
            containers: -1,
            labels: sorted(config.labels),
        },
        architecture: i.architecture.unwrap_or_default(),
        os: i.os.unwrap_or_default(),
        user: config.user.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
        entrypoint: config.entrypoint.unwrap_or_default(),
        env_names: env_names(config.env.as_deref()),
        exposed_ports: sorted_keys(config.exposed_ports),
        layers: i
            .root_fs
            .and_then(|r| r.layers)
            .map_or(0, |layers| layers.len()),
    }
}

/// A volume, with the names of the containers that use it.
pub(super) fn volume_summary(v: bollard::models::Volume, in_use_by: Vec<String>) -> VolumeSummary {
    VolumeSummary {
        name: v.name,
        driver: v.driver,
        mountpoint: v.mountpoint,
        created: v.created_at.and_then(real_date),
        scope: v.scope.map(|s| s.to_string()).unwrap_or_default(),
        labels: v.labels.into_iter().collect(),
        in_use_by,
    }
}

fn sorted(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

/// Seconds since the Unix epoch of an RFC 3339 date (`2024-05-01T10:00:00.5+02:00`).
pub(super) fn unix_seconds(date: &str) -> Option<i64> {
    let num = |s: &str| s.parse::<i64>().ok();
    let (day, time) = date.split_once(['T', 't', ' '])?;
    let mut ymd = day.splitn(3, '-');
    let (y, m, d) = (num(ymd.next()?)?, num(ymd.next()?)?, num(ymd.next()?)?);
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => return None,
    };
    let clock = clock.split('.').next()?;
    let mut hms = clock.splitn(3, ':');
    let (hh, mm, ss) = (num(hms.next()?)?, num(hms.next()?)?, num(hms.next()?)?);
    let offset_secs = match offset.as_bytes().first() {
        Some(b'Z' | b'z') => 0,
        Some(sign) => {
            let (oh, om) = offset[1..].split_once(':')?;
            let secs = num(oh)? * 3600 + num(om)? * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        None => return None,
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss - offset_secs)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use bollard::models::{
        ContainerConfig, ContainerCpuUsage, ContainerState, Health, HostConfig, PortTypeEnum,
    };

    use super::*;

    #[test]
    fn rfc3339_dates_become_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2024-05-01T10:00:00.123456789Z"),
            Some(1_714_557_600)
        );
        assert_eq!(
            unix_seconds("2024-05-01T12:00:00+02:00"),
            Some(1_714_557_600)
        );
        assert_eq!(unix_seconds("2000-02-29T00:00:00-01:30"), Some(951_787_800));
        assert_eq!(unix_seconds("yesterday"), None);
        assert_eq!(unix_seconds("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn list_entries_keep_labels_ports_networks_and_health() {
        let c = bollard::models::ContainerSummary {
            id: Some("abc".into()),
            names: Some(vec!["/shop-web-1".into()]),
            state: Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
            status: Some("Up 2 minutes (healthy)".into()),
            labels: Some(HashMap::from([
                ("com.docker.compose.project".into(), "shop".into()),
                ("com.docker.compose.service".into(), "web".into()),
            ])),
            ports: Some(vec![
                Port {
                    ip: Some("0.0.0.0".into()),
                    private_port: 80,
                    public_port: Some(8080),
                    typ: Some(PortTypeEnum::TCP),
                },
                Port {
                    ip: None,
                    private_port: 53,
                    public_port: None,
                    typ: Some(PortTypeEnum::UDP),
                },
            ]),
            network_settings: Some(bollard::models::ContainerSummaryNetworkSettings {
                networks: Some(HashMap::from([
                    ("shop_default".into(), Default::default()),
                    ("bridge".into(), Default::default()),
                ])),
            }),
            ..Default::default()
        };
        let s = summary(c);
        assert_eq!(s.name, "shop-web-1");
        assert_eq!(s.state, "running");
        assert_eq!(s.health.as_deref(), Some("healthy"));
        assert_eq!(s.compose.unwrap().service.as_deref(), Some("web"));
        assert_eq!(s.networks, ["bridge", "shop_default"]);
        assert_eq!(s.ports[0].private_port, 53);
        assert_eq!(s.ports[0].protocol, "udp");
        assert_eq!(s.ports[1].public_port, Some(8080));
        assert_eq!(s.cpu_percent, None);
    }

    #[test]
    fn details_carry_environment_names_never_values() {
        let inspect = ContainerInspectResponse {
            restart_count: Some(3),
            state: Some(ContainerState {
                started_at: Some("2024-05-01T10:00:00Z".into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                exit_code: Some(0),
                pid: Some(42),
                health: Some(Health {
                    status: Some(HealthStatusEnum::UNHEALTHY),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            config: Some(ContainerConfig {
                env: Some(vec![
                    "PASSWORD=hunter2".into(),
                    "PATH=/bin".into(),
                    "EMPTY=".into(),
                ]),
                ..Default::default()
            }),
            host_config: Some(HostConfig::default()),
            ..Default::default()
        };
        let mut s = summary(bollard::models::ContainerSummary::default());
        apply_inspect(&mut s, &inspect);
        assert_eq!(s.restart_count, 3);
        assert_eq!(s.health.as_deref(), Some("unhealthy"));
        let d = detail(s, inspect);
        assert_eq!(d.config.env_names, ["PASSWORD", "PATH", "EMPTY"]);
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert_eq!(d.started_at.as_deref(), Some("2024-05-01T10:00:00Z"));
        assert_eq!(d.finished_at, None);
        assert_eq!(d.exit_code, None, "no exit code before the first exit");
        assert_eq!(d.pid, Some(42));
        assert_eq!(d.host_config.restart_policy, "no");
    }

    fn reading(container: u64, system: u64) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(container),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(2),
            throttling_data: None,
        }
    }

    #[test]
    fn cpu_and_memory_follow_docker_stats() {
        let before = cpu_reading(Some(&reading(1_000, 10_000))).unwrap();
        let after = cpu_reading(Some(&reading(1_500, 11_000))).unwrap();
        // 500 of 1000 ns over 2 CPUs: one full core.
        assert_eq!(cpu_between(before, after), Some(100.0));
        assert_eq!(
            cpu_between(after, before),
            None,
            "a restart resets the counters"
        );
        assert_eq!(cpu_reading(Some(&ContainerCpuStats::default())), None);
        let memory = ContainerMemoryStats {
            usage: Some(100),
            limit: Some(400),
            stats: Some(HashMap::from([("total_inactive_file".into(), 20)])),
            ..Default::default()
        };
        assert_eq!(memory_used(&memory), Some(80));
        let sample = stats_sample(&ContainerStatsResponse {
            cpu_stats: Some(reading(1_500, 11_000)),
            precpu_stats: Some(reading(1_000, 10_000)),
            memory_stats: Some(memory),
            ..Default::default()
        });
        assert_eq!(sample.cpu_percent, 100.0);
        assert_eq!(sample.memory_percent, 20.0);
        assert_eq!(sample.online_cpus, 2);
    }

    #[test]
    fn log_entries_split_into_timestamp_and_line() {
        let line = log_line(&LogOutput::StdErr {
            message: "2024-05-01T10:00:00.123456789Z oops: \u{fffd}\r\n".into(),
        });
        assert_eq!(line.stream, ExecStream::Stderr);
        assert_eq!(
            line.timestamp.as_deref(),
            Some("2024-05-01T10:00:00.123456789Z")
        );
        assert_eq!(line.line, "oops: \u{fffd}");
        let bare = log_line(&LogOutput::Console {
            message: "no timestamp\n".into(),
        });
        assert_eq!((bare.timestamp, bare.line.as_str()), (None, "no timestamp"));
    }

    #[test]
    fn networks_say_whether_they_are_connectable() {
        let host = bollard::models::Network {
            name: Some("host".into()),
            driver: Some("host".into()),
            scope: Some("local".into()),
            ..Default::default()
        };
        assert!(!network_summary(&host).connectable);
        let app = bollard::models::Network {
            name: Some("app".into()),
            driver: Some("bridge".into()),
            scope: Some("local".into()),
            ..Default::default()
        };
        assert!(network_summary(&app).connectable);
    }
}
