//! rampart-pipeline: the ingest and merge stages wired to Kafka.
//!
//! Owns, from the bottom layer up:
//! - leaves: `config` (TOML + `RAMPART_*` env), `records` (the records the
//!   stages write: [`records::OutRecord`], dead letters, rollup keys,
//!   dimension names), `checkpoint` (per-partition replay state, the commit
//!   metadata codec and its byte budget, the policy for unreadable metadata),
//!   `observer` (the typed events a stage reports), `health` (readiness),
//!   `log_budget` (rate limits of warnings that can repeat per message);
//! - `stage`: the runtime (consume → `Handler::process` → produce →
//!   checkpoint, rebalances, aborts), which knows the `Handler` trait and the
//!   `StageObserver` trait and nothing above them;
//! - the handlers `ingest` and `merge`, which implement `Handler` on top of
//!   the runtime and report their own figures to `telemetry`;
//! - [`telemetry`]: every metric name, label and the recorder; implements
//!   `StageObserver`, knows neither the runtime nor the handlers;
//! - [`http`]: `/metrics`, `/health`, `/ready`;
//! - [`run`] (this file): wires stages, handlers and telemetry together.
//!
//! Dependencies run one way (invariant): `stage` imports no handler and no
//! telemetry module; `telemetry` imports neither `stage` nor a handler.
//! Must not know about: the CLI, terminals, load generation. The per-event
//! logic lives in `rampart-core`; this crate only moves bytes and state.

pub mod allocator;
mod checkpoint;
pub mod config;
mod consumer_error;
mod health;
pub mod http;
mod ingest;
mod log_budget;
mod memory;
mod merge;
mod observer;
pub mod records;
mod stage;
pub mod telemetry;
mod topics;
mod topology;

pub use checkpoint::CheckpointError;
pub use stage::{StageCounters, StageError};
pub use topics::{check_existing_topics, topic_specs};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rampart_core::enrich::Prefix24Origins;
use rampart_enrich::Enrichment;
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use tracing::info;

use crate::checkpoint::RestorePolicy;
use crate::config::{Guarantee, Settings};
use crate::ingest::{IngestHandler, IngestWiring};
use crate::merge::{MergeHandler, MergeWiring};
use crate::stage::{Stage, StageSettings};
use crate::telemetry::{IngestMetrics, MergeMetrics, StageTelemetry};
use crate::topology::Topology;

/// Which stages this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Both,
    Ingest,
    Merge,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot open enrichment data: {0}")]
    Enrich(#[from] rampart_enrich::EnrichError),
    #[error("kafka: {0}")]
    Kafka(#[from] rampart_kafka::Error),
    #[error("{0}")]
    Other(String),
    #[error("{0}")]
    Stage(#[from] stage::StageError),
    #[error("a stage thread panicked")]
    Panicked,
}

/// Counters of the running stages, for progress displays and tests.
#[derive(Clone, Debug, Default)]
pub struct RunCounters {
    pub ingest: Option<Arc<StageCounters>>,
    pub merge: Option<Arc<StageCounters>>,
}

/// The consumer of one stage thread: a static member of `group` named
/// `member` (see [`group_member`]).
fn consumer_config(
    settings: &Settings,
    group: &str,
    member: &str,
) -> Result<ClientConfig, RunError> {
    let mut c = rampart_kafka::consumer_config(
        &settings.raw.kafka.brokers,
        group,
        &settings.raw.kafka.client,
    )?;
    if let Some(value) = settings.raw.kafka.client.get("group.instance.id") {
        return Err(RunError::Other(format!(
            "kafka.client group.instance.id = {value:?}: rampart gives every stage thread its \
             own static member id, derived from --instance; remove it"
        )));
    }
    // Static membership: a restarted instance rejoins under the same member
    // id and takes its partitions back at once, instead of waiting for the
    // group to time its predecessor out (session.timeout.ms). A clean stop
    // still leaves the group (Stage::run unsubscribes before closing, and
    // librdkafka sends LeaveGroup on unsubscribe, only not on close).
    c.set("group.instance.id", member);
    // A stage always says where a partition starts (committed, replay offset or
    // the beginning); an offset that no longer exists (retention) must surface
    // as an error (see consumer_error), never as a silent jump.
    if let Some(value) = settings.raw.kafka.client.get("auto.offset.reset") {
        return Err(RunError::Other(format!(
            "kafka.client auto.offset.reset = {value:?}: rampart's stage consumers run with \
             \"error\" so that input lost to retention is never skipped silently; remove it"
        )));
    }
    c.set("auto.offset.reset", "error");
    // End-of-partition events tell the ingest stage which partitions are idle
    // (caught up), as opposed to merely slow.
    c.set("enable.partition.eof", "true");
    // A stalled member is noticed within seconds, so partitions move on
    // quickly. A member that does not come back (a static one that crashed
    // and was not restarted) holds its partitions this long. Members learn
    // of a rebalance at their next heartbeat, and a cooperative handover
    // takes two rounds: 500 ms, not Kafka's 3 s (ARCHITECTURE.md).
    if !settings.raw.kafka.client.contains_key("session.timeout.ms") {
        c.set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "500");
    }
    if !settings
        .raw
        .kafka
        .client
        .contains_key("statistics.interval.ms")
    {
        // Consumer lag per partition for metrics and /ready (StageEvent::ConsumerStatistics).
        c.set("statistics.interval.ms", "1000");
    }
    Ok(c)
}

/// The static group member id (`group.instance.id`) of stage thread
/// `thread` of `stage` in instance `instance`: stable across restarts of the
/// instance, distinct between threads and instances.
fn group_member(instance: &str, stage: &str, thread: usize) -> String {
    format!("{instance}-{stage}-{thread}")
}

/// Checks that `instance` can name Kafka group members and transactions:
/// Kafka accepts only ASCII letters, digits, `.`, `_` and `-` in a
/// `group.instance.id`, at most 249 of them (the stage suffix included).
pub fn check_instance(instance: &str) -> Result<(), String> {
    const MAX: usize = 249 - "-ingest-9999".len();
    if instance.is_empty() {
        return Err("the instance name is empty".into());
    }
    if instance.len() > MAX {
        return Err(format!(
            "instance name {instance:?} is longer than {MAX} characters"
        ));
    }
    if let Some(c) = instance
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "instance name {instance:?} contains {c:?}: only ASCII letters, digits, '.', '_' \
             and '-' (it names Kafka group members)"
        ));
    }
    Ok(())
}

fn producer_config(
    settings: &Settings,
    role: &str,
    instance: &str,
) -> Result<ClientConfig, RunError> {
    let k = &settings.raw.kafka;
    let mut c = match settings.raw.processing.guarantee {
        Guarantee::ExactlyOnce => {
            let id = format!(
                "{}-{role}-{instance}",
                settings.raw.processing.transactional_id_prefix
            );
            rampart_kafka::transactional_producer_config(&k.brokers, &id, &k.client)?
        }
        Guarantee::AtLeastOnce => rampart_kafka::producer_config(&k.brokers, &k.client)?,
    };
    if !k.client.contains_key("partitioner") {
        // Same key, same partition as Java clients.
        c.set("partitioner", "murmur2_random");
    }
    if !k.client.contains_key("delivery.report.only.error") {
        // The stage reads only failed deliveries (`DeliveryCtx`); a report
        // per delivered record kept the producer's polling thread busy (6 %
        // of a scattered run's samples at one record per rollup).
        c.set("delivery.report.only.error", "true");
    }
    Ok(c)
}

/// Every librdkafka client configuration `run` builds from `settings` (one of each kind: the
/// ingest and merge consumers and producers, the admin client), labelled, for `check-config`.
pub fn client_configs(
    settings: &Settings,
) -> Result<Vec<(&'static str, rampart_kafka::ClientKind, ClientConfig)>, RunError> {
    use rampart_kafka::ClientKind::{Consumer, Producer};
    let k = &settings.raw.kafka;
    Ok(vec![
        (
            "ingest consumer",
            Consumer,
            consumer_config(
                settings,
                &k.ingest_group,
                &group_member("check", "ingest", 0),
            )?,
        ),
        (
            "ingest producer",
            Producer,
            producer_config(settings, "ingest-0", "check")?,
        ),
        (
            "merge consumer",
            Consumer,
            consumer_config(settings, &k.merge_group, &group_member("check", "merge", 0))?,
        ),
        (
            "merge producer",
            Producer,
            producer_config(settings, "merge", "check")?,
        ),
        (
            "admin client",
            Producer,
            rampart_kafka::admin_config(&k.brokers, &k.client)?,
        ),
    ])
}

fn admin(settings: &Settings) -> Result<AdminClient<DefaultClientContext>, RunError> {
    let cfg = rampart_kafka::admin_config(&settings.raw.kafka.brokers, &settings.raw.kafka.client)?;
    cfg.create()
        .map_err(|e| RunError::Kafka(rampart_kafka::Error::client("create admin client", e)))
}

/// Partitions of `topic`. A topic created a moment ago may not be in the
/// broker's metadata yet, so an unknown topic is retried for a few seconds.
fn partition_count(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<u32, RunError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match rampart_kafka::partition_count(admin, topic) {
            Ok(n) => return Ok(n.max(1) as u32),
            Err(rampart_kafka::Error::UnknownTopic(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Starts the stages of `role` and runs them until `shutdown` is set. Each
/// stage checkpoints and leaves its group before this returns.
/// `instance` names this process in transactional ids and static group
/// member ids; two live processes must not share one (a restarted process
/// should reuse its own, so it fences its predecessor and takes its
/// partitions back at once).
pub fn run(
    settings: &Settings,
    role: Role,
    instance: &str,
    shutdown: Arc<AtomicBool>,
    counters_out: Option<&std::sync::Mutex<RunCounters>>,
) -> Result<(), RunError> {
    let cfg = &settings.raw;
    check_instance(instance).map_err(RunError::Other)?;
    health::clear_failure();
    let admin = admin(settings)?;
    topics::prepare_topics(settings, &admin)?;
    let interval = Duration::from_millis(settings.checkpoint_interval_ms as u64);
    let caught_up_checkpoint = Duration::from_millis(settings.caught_up_checkpoint_ms as u64);
    // Both stages route by the counts and record them in every checkpoint.
    // Input partitions are numbered across the inputs in config order
    // (`Topology`): the markers carry those numbers, the merge waits for all.
    let partials_partitions = partition_count(&admin, &cfg.topics.partials)?;
    let mut inputs = Vec::new();
    let mut input_total = 0u32;
    for input in &settings.inputs {
        let partitions = partition_count(&admin, &input.topic)?;
        inputs.push((input, input_total, partitions));
        input_total += partitions;
    }
    let first_input = settings
        .inputs
        .first()
        .map_or_else(|| cfg.topics.input.clone(), |i| i.topic.clone());
    let topology_of = |topic: &str, partitions: u32, base: u32| Topology {
        input_topic: topic.into(),
        input_partitions: partitions,
        input_base: base,
        input_total,
        partials_topic: cfg.topics.partials.as_str().into(),
        partials_partitions,
    };
    let restore = |topology: Topology, consumes_partials| RestorePolicy {
        topology,
        consumes_partials,
        reset_state: settings.reset_state,
    };
    let merge_threads = match role {
        Role::Both | Role::Merge => cfg.processing.merge_threads_for(partials_partitions),
        Role::Ingest => 0,
    };
    let mut threads = Vec::new();
    let mut counters = RunCounters::default();
    let publish = |counters: &RunCounters| {
        if let Some(out) = counters_out {
            *out.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = counters.clone();
        }
    };
    if matches!(role, Role::Both | Role::Ingest) {
        let mut enricher = Enrichment::open_with(
            cfg.enrich.country_db.as_deref(),
            cfg.enrich.asn_db.as_deref(),
            cfg.enrich.sectors.as_deref(),
            &cfg.enrich.origin_fields(),
        )?;
        enricher.origin = enricher.origin.with_prefix24_table(cfg.enrich.origin_table);
        // Built once here, before the stages start, and shared by them.
        let started = std::time::Instant::now();
        let table_bytes = match enricher.origin.prefix24_origins() {
            Some(table) => {
                info!(
                    origins = table.origins().len(),
                    mib = Prefix24Origins::BYTES >> 20,
                    ms = started.elapsed().as_millis() as u64,
                    "built the origin table of every IPv4 /24 that lies in one network of the databases"
                );
                Prefix24Origins::BYTES
            }
            None => 0,
        };
        // Threads per input: `processing.ingest_threads`, or one per core up
        // to the input's partitions.
        let threads_of = |partitions: u32| match cfg.processing.ingest_threads {
            0 => cfg.processing.threads().min(partitions.max(1) as usize),
            n => n,
        };
        let n_total: usize = inputs.iter().map(|&(_, _, p)| threads_of(p)).sum();
        let memory = settings.memory_budget.map(|budget| {
            let stage_threads = n_total + merge_threads;
            let queues = memory::queue_bytes(&cfg.kafka.client, stage_threads);
            let cells = config::parse_bytes(&cfg.keys.memory).unwrap_or(0);
            info!(
                budget_mib = budget >> 20,
                queues_mib = queues >> 20,
                origin_table_mib = table_bytes >> 20,
                "process memory budget: librdkafka queues and the origin table first, the rest divided among owned partitions"
            );
            Arc::new(memory::MemoryShare::new(
                budget,
                queues + table_bytes,
                cells,
                n_total,
            ))
        });
        // Every thread is its own group member; they share one set of
        // counters (all inputs together).
        let shared = Arc::new(StageCounters::default());
        let several = inputs.len() > 1;
        // One telemetry for the ingest stages of every input: built once
        // (building resets the stage's readiness state and handler gauges),
        // its lag keyed by (topic, partition).
        let input_topics: Vec<&str> = inputs.iter().map(|(i, _, _)| i.topic.as_str()).collect();
        let telemetry = Arc::new(StageTelemetry::new("ingest", &input_topics));
        let mut ingest_stages = Vec::new();
        // The thread's index in the memory share, across every input.
        let mut thread_index = 0usize;
        for &(input, base, partitions) in &inputs {
            let topic = input.topic.as_str();
            let wiring = IngestWiring {
                partials_topic: cfg.topics.partials.as_str().into(),
                dlq_topic: cfg.topics.dlq.as_str().into(),
                max_record_bytes: records::max_record_bytes(&cfg.kafka.client),
                restore: restore(topology_of(topic, partitions, base), false),
                idle_timeout_ms: settings.idle_timeout_ms,
                format: input.format,
            };
            let n = threads_of(partitions);
            // The first input keeps the configured group and transactional
            // ids (a single-input deployment's checkpoints stay valid); each
            // further input has its own group, named after its topic (static
            // member ids need only be unique within a group).
            let (group, slot) = if several && base > 0 {
                (
                    format!("{}.{topic}", cfg.kafka.ingest_group),
                    format!("ingest-{topic}-"),
                )
            } else {
                (cfg.kafka.ingest_group.clone(), "ingest-".to_owned())
            };
            info!(input_topic = %topic, format = input.format.as_str(), %group, ?wiring, threads = n, "starting ingest stage");
            let mut parts = Vec::with_capacity(n);
            for i in 0..n {
                let handler = IngestHandler::new(
                    settings.ingest.clone(),
                    wiring.clone(),
                    enricher.clone(),
                    IngestMetrics::new(),
                    memory.clone().map(|share| (share, thread_index)),
                );
                thread_index += 1;
                parts.push((
                    StageSettings {
                        name: "ingest",
                        input_topic: topic.to_owned(),
                        consumer: consumer_config(
                            settings,
                            &group,
                            &group_member(instance, "ingest", i),
                        )?,
                        producer: producer_config(settings, &format!("{slot}{i}"), instance)?,
                        guarantee: cfg.processing.guarantee,
                        checkpoint_interval: interval,
                        caught_up_checkpoint,
                        watched_topics: vec![
                            (topic.to_owned(), partitions),
                            (cfg.topics.partials.clone(), partials_partitions),
                        ],
                    },
                    handler,
                ));
            }
            let built = build_stages(parts, &shared, &telemetry)?;
            ingest_stages.extend(
                built
                    .into_iter()
                    .enumerate()
                    .map(|(i, stage)| (format!("{slot}{i}"), stage)),
            );
        }
        counters.ingest = Some(shared);
        // Before the ingest starts: the merge's stages are built after it
        // (init_transactions, ~0.5 s), and a caller timing the ingest by its
        // counters must see its first assignment.
        publish(&counters);
        // Every ingest stage is built (its transactions initialised) before
        // any joins its group: see `Stage::run`.
        for (name, stage) in ingest_stages {
            threads.push(spawn_stage(name, stage, shutdown.clone()));
        }
    }
    if matches!(role, Role::Both | Role::Merge) {
        let wiring = MergeWiring {
            rollups_topic: cfg.topics.rollups.as_str().into(),
            restore: restore(topology_of(&first_input, input_total, 0), true),
            window_size_ms: settings.ingest.window.size_ms,
        };
        let telemetry = Arc::new(StageTelemetry::new(
            "merge",
            &[cfg.topics.partials.as_str()],
        ));
        // Every thread is its own member of the merge group, with its own
        // partials partitions; thread 0 keeps the single-thread ids. The
        // threads share the domain counters (`MergeMetrics::sibling`).
        let n = merge_threads.max(1);
        let first = MergeMetrics::new();
        let mut metrics: Vec<MergeMetrics> = (1..n).map(|_| first.sibling()).collect();
        metrics.insert(0, first);
        let names: Vec<String> = (0..n)
            .map(|i| match i {
                0 => "merge".to_owned(),
                i => format!("merge-{i}"),
            })
            .collect();
        let mut parts = Vec::with_capacity(n);
        for ((i, slot), metrics) in names.iter().enumerate().zip(metrics) {
            let stage_settings = StageSettings {
                name: "merge",
                input_topic: cfg.topics.partials.clone(),
                consumer: consumer_config(
                    settings,
                    &cfg.kafka.merge_group,
                    &group_member(instance, "merge", i),
                )?,
                producer: producer_config(settings, slot, instance)?,
                guarantee: cfg.processing.guarantee,
                checkpoint_interval: interval,
                caught_up_checkpoint,
                watched_topics: inputs
                    .iter()
                    .map(|(input, _, partitions)| (input.topic.clone(), *partitions))
                    .chain([(cfg.topics.partials.clone(), partials_partitions)])
                    .collect(),
            };
            parts.push((stage_settings, MergeHandler::new(wiring.clone(), metrics)));
        }
        let merge_counters = Arc::new(StageCounters::default());
        let built = build_stages(parts, &merge_counters, &telemetry)?;
        counters.merge = Some(merge_counters);
        for (name, stage) in names.into_iter().zip(built) {
            threads.push(spawn_stage(name, stage, shutdown.clone()));
        }
    }
    publish(&counters);
    let mut first_err = None;
    for t in threads {
        let res = match t {
            Ok(handle) => handle
                .join()
                .map_err(|_| RunError::Panicked)
                .and_then(|r| r.map_err(RunError::from)),
            Err(e) => Err(RunError::Other(format!("cannot start thread: {e}"))),
        };
        if let Err(e) = res {
            // Normally the failing thread has stopped the others already.
            shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Builds the stages of one role at once, each on its own thread: a
/// restart waits for one `init_transactions` round trip, not one per thread.
fn build_stages<H: stage::Handler>(
    parts: Vec<(StageSettings, H)>,
    counters: &Arc<StageCounters>,
    telemetry: &Arc<StageTelemetry>,
) -> Result<Vec<Stage<H>>, RunError> {
    std::thread::scope(|scope| {
        let builds: Vec<_> = parts
            .into_iter()
            .map(|(settings, handler)| {
                let (counters, telemetry) = (counters.clone(), telemetry.clone());
                scope.spawn(move || Stage::new(settings, handler, counters, telemetry))
            })
            .collect();
        builds
            .into_iter()
            .map(|b| match b.join() {
                Ok(built) => built.map_err(RunError::from),
                Err(_) => Err(RunError::Panicked),
            })
            .collect()
    })
}

/// Runs `stage` on its own thread. The first stage thread that ends with an
/// error (or panics) turns `/health` to 503 and sets `shutdown`, so every
/// other stage checkpoints and stops within a poll interval and `run`
/// returns that error: the process exits non-zero in seconds, whichever
/// thread failed (not only when the first one joined fails).
fn spawn_stage<H: stage::Handler>(
    name: String,
    stage: Stage<H>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<Result<(), StageError>>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let guard = StopAllOnFailure {
                name,
                shutdown: shutdown.clone(),
            };
            let result = stage.run(&shutdown);
            if let Err(e) = &result {
                guard.fail(&e.to_string());
            }
            result
        })
}

/// Stops the whole process's stages when its stage thread fails or panics.
struct StopAllOnFailure {
    name: String,
    shutdown: Arc<AtomicBool>,
}

impl StopAllOnFailure {
    fn fail(&self, reason: &str) {
        tracing::error!(stage = %self.name, error = %reason, "stage failed; stopping every stage");
        health::mark_failed(format!("{}: {reason}", self.name));
        self.shutdown
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for StopAllOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.fail("panicked");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_must_be_kafka_member_ids() {
        for good in ["r", "rampart-0", "pod.ns_1-a", &"x".repeat(237)] {
            assert_eq!(check_instance(good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(238)] {
            assert!(check_instance(bad).is_err(), "{bad:?} accepted");
        }
        // The longest accepted name still makes a member id Kafka takes.
        assert!(group_member(&"x".repeat(237), "ingest", 9999).len() <= 249);
        assert_ne!(
            group_member("a", "ingest", 0),
            group_member("a", "ingest", 1)
        );
        assert_ne!(
            group_member("a", "ingest", 0),
            group_member("a", "merge", 0)
        );
    }

    #[test]
    fn a_user_group_instance_id_is_refused_for_every_consumer() {
        let mut settings = crate::config::load(None, []).unwrap_or_else(|e| panic!("{e}"));
        settings
            .raw
            .kafka
            .client
            .insert("group.instance.id", "shared");
        let err = client_configs(&settings)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("group.instance.id"), "{err}");
        let c = consumer_config(
            &crate::config::load(None, []).unwrap_or_else(|e| panic!("{e}")),
            "g",
            "inst-ingest-1",
        )
        .map_err(|e| e.to_string());
        assert_eq!(
            c.as_ref().ok().and_then(|c| c.get("group.instance.id")),
            Some("inst-ingest-1")
        );
    }
}
