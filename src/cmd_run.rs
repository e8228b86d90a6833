//! `rampart run`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::{Args, ValueEnum};
use rampart_pipeline::Role;
use tracing::info;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The TOML configuration file; without it, defaults and RAMPART_* variables.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Which stages to run: both (default), or one of them to scale them apart.
    #[arg(long, value_enum, default_value_t = RoleArg::Both)]
    pub role: RoleArg,
    /// Stable name of this instance, part of its transactional ids and static
    /// group member ids. Give each process its own and keep it across
    /// restarts (a restarted instance then fences its predecessor and takes
    /// its partitions back at once). Default: the host name (a StatefulSet
    /// pod's name); processes sharing a host need their own.
    #[arg(long, env = "RAMPART_INSTANCE")]
    pub instance: Option<String>,
    /// Start partitions whose checkpoint is refused from their committed
    /// offset with empty state, instead of stopping. A checkpoint is refused
    /// when its metadata is missing, unreadable or written by a newer
    /// rampart, or when a topic's partition count changed since it was
    /// written. What is lost: the events of windows such a partition held
    /// open (missing from their rollups) and its dedup memory. After a
    /// partition count change, drain first (stop the producers, wait until
    /// every window is final), then run once with this flag.
    #[arg(long)]
    pub reset_state: bool,
    #[command(flatten)]
    pub client: crate::util::ClientArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Both,
    Ingest,
    Merge,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut settings = args.client.load(args.config.as_deref())?;
    settings.reset_state = args.reset_state;
    let instance = match args.instance {
        Some(name) => name,
        None => default_instance(host_name().as_deref())?,
    };
    rampart_pipeline::check_instance(&instance).map_err(|e| anyhow::anyhow!("--instance: {e}"))?;
    let role = match args.role {
        RoleArg::Both => Role::Both,
        RoleArg::Ingest => Role::Ingest,
        RoleArg::Merge => Role::Merge,
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    crate::util::install_signal_handlers(shutdown.clone())?;
    // Kept alive for the whole run: dropping it stops the endpoints.
    let _metrics_server = if settings.raw.metrics.listen.is_empty() {
        None
    } else {
        let handle = rampart_pipeline::telemetry::install_recorder()?;
        Some(rampart_pipeline::http::serve(
            &settings.raw.metrics.listen,
            handle,
        )?)
    };
    info!(
        ?role,
        %instance,
        brokers = %settings.raw.kafka.brokers,
        librdkafka = %rampart_kafka::librdkafka_version(),
        "rampart starting"
    );
    crate::util::check_kafka(&settings.raw.kafka.brokers, &settings.raw.kafka.client)?;
    rampart_pipeline::run(&settings, role, &instance, shutdown, None)
        .map_err(|e| explain_denial(e.into(), &settings, role, &instance))?;
    info!("rampart stopped cleanly");
    Ok(())
}

/// The host name: the kernel's, else `$HOSTNAME`.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
}

/// The instance name without `--instance`: the host name, the same after a
/// restart (unlike one with the process id), so a restarted process fences
/// its predecessor's transactions and rejoins its group as the same static
/// member. Without a host name there is nothing stable to take: refused.
fn default_instance(host: Option<&str>) -> anyhow::Result<String> {
    match host.map(str::trim) {
        Some(host) if !host.is_empty() => Ok(host.to_owned()),
        _ => anyhow::bail!(
            "no host name to name this instance by: give --instance (or RAMPART_INSTANCE), \
             the same on every restart of this process and different from every other one"
        ),
    }
}

/// Says which ACL is missing when Kafka's authorizer refused an operation: the principal needs
/// Read and Write on the topics, Read on the consumer groups and Write on the transactional
/// ids of its role.
fn explain_denial(
    error: anyhow::Error,
    settings: &rampart_pipeline::config::Settings,
    role: Role,
    instance: &str,
) -> anyhow::Error {
    let Some(denied) = rampart_kafka::denied(error.as_ref()) else {
        return error;
    };
    let t = &settings.raw.topics;
    let k = &settings.raw.kafka;
    let prefix = &settings.raw.processing.transactional_id_prefix;
    let (topics, groups) = match role {
        Role::Ingest => (
            format!("{} (read), {} and {} (write)", t.input, t.partials, t.dlq),
            k.ingest_group.clone(),
        ),
        Role::Merge => (
            format!("{} (read), {} (write)", t.partials, t.rollups),
            k.merge_group.clone(),
        ),
        Role::Both => (
            format!(
                "{} (read), {} (read, write), {} and {} (write)",
                t.input, t.partials, t.rollups, t.dlq
            ),
            format!("{} and {}", k.ingest_group, k.merge_group),
        ),
    };
    let what = match denied {
        rampart_kafka::Denied::Topic => {
            format!("a topic operation; this role uses topics {topics}")
        }
        rampart_kafka::Denied::TransactionalId => {
            format!("the transactional ids {prefix}-*-{instance} (Write)")
        }
        rampart_kafka::Denied::Group => format!("the consumer groups {groups} (Read)"),
        rampart_kafka::Denied::Cluster => {
            "a cluster operation (Create topics, IdempotentWrite)".into()
        }
    };
    error.context(format!(
        "not authorized: Kafka's ACLs deny this principal {what}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_instance_is_the_host_name_and_survives_a_restart() {
        let first = default_instance(Some("rampart-2\n")).ok();
        assert_eq!(first.as_deref(), Some("rampart-2"));
        // A restart (another process id) derives the same name.
        assert_eq!(default_instance(Some("rampart-2\n")).ok(), first);
        for missing in [None, Some(""), Some(" \n")] {
            let err = default_instance(missing).map_err(|e| e.to_string());
            assert!(
                err.as_ref().is_err_and(|e| e.contains("--instance")),
                "{err:?}"
            );
        }
    }
}
