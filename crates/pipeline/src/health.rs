//! Readiness: whether every started stage has partitions, has finished
//! replaying and has caught up with its input (`/ready`, `rampart_ready`).
//!
//! Each stage has one shared [`StageStatus`] (found by name, so the several
//! threads of one role add to the same one). `telemetry` fills it from the
//! stages' events and the handlers' per-tick reports; [`readiness`] reads it.
//! A leaf module: it imports nothing from this crate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// A stage is "caught up" for `/ready` when its consumer lag on each input
/// topic (messages, summed over the topic's partitions) is at most this.
pub(crate) const READY_MAX_LAG_MESSAGES: i64 = 1_000;

/// Consumer lag in messages keyed by (topic, partition): with several
/// inputs, partition 0 of one topic is not partition 0 of another.
pub(crate) type LagByPartition = BTreeMap<(Arc<str>, i32), i64>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What readiness knows about one stage.
#[derive(Debug)]
pub(crate) struct StageStatus {
    name: &'static str,
    started: AtomicBool,
    assigned: AtomicU64,
    /// One count per handler (one per stage thread): partitions replaying.
    replaying: Mutex<Vec<Arc<AtomicU64>>>,
    /// Consumer lag per assigned (topic, partition) (`-1`: unknown yet),
    /// from the latest statistics; `None` before the first.
    lag: Mutex<Option<LagByPartition>>,
}

impl StageStatus {
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Forgets what an earlier run of the stage left (a new run starts).
    pub(crate) fn reset(&self) {
        self.started.store(false, Ordering::Relaxed);
        self.assigned.store(0, Ordering::Relaxed);
        lock(&self.replaying).clear();
        *lock(&self.lag) = None;
    }

    pub(crate) fn mark_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    pub(crate) fn partitions_assigned(&self, count: u64) {
        self.assigned.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn partitions_revoked(&self, count: u64) {
        self.assigned.fetch_sub(count, Ordering::Relaxed);
    }

    /// Input partitions assigned to the stage (all its threads).
    pub(crate) fn assigned(&self) -> u64 {
        self.assigned.load(Ordering::Relaxed)
    }

    /// A new handler's count of replaying partitions, summed into [`Self::replaying`].
    pub(crate) fn replaying_count(&self) -> Arc<AtomicU64> {
        let count = Arc::new(AtomicU64::new(0));
        lock(&self.replaying).push(count.clone());
        count
    }

    /// Partitions replaying, over all the stage's handlers.
    pub(crate) fn replaying(&self) -> u64 {
        lock(&self.replaying)
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }

    /// Changes the lag map (created empty by the first statistics).
    pub(crate) fn update_lag<T>(&self, update: impl FnOnce(&mut LagByPartition) -> T) -> T {
        let mut lag = lock(&self.lag);
        update(lag.get_or_insert_with(BTreeMap::new))
    }

    /// Why the stage is not ready, if it is not.
    fn not_ready_reason(&self) -> Option<String> {
        let name = self.name;
        if self.assigned() == 0 {
            return Some(format!("{name}: no partitions assigned"));
        }
        let replaying = self.replaying();
        if replaying > 0 {
            return Some(format!("{name}: replaying {replaying} partitions"));
        }
        let lag = lock(&self.lag);
        let Some(lag) = lag.as_ref() else {
            return Some(format!("{name}: consumer lag not known yet"));
        };
        if lag.is_empty() || lag.values().any(|&l| l < 0) {
            return Some(format!("{name}: consumer lag not known yet"));
        }
        let mut per_topic: BTreeMap<&str, i64> = BTreeMap::new();
        for ((topic, _), &partition_lag) in lag {
            *per_topic.entry(topic).or_default() += partition_lag;
        }
        per_topic
            .into_iter()
            .find(|&(_, total)| total > READY_MAX_LAG_MESSAGES)
            .map(|(topic, total)| format!("{name}: consumer lag {total} messages on {topic}"))
    }
}

fn failure_slot() -> &'static Mutex<Option<String>> {
    static FAILURE: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    FAILURE.get_or_init(|| Mutex::new(None))
}

/// A stage of this process failed fatally: `/health` answers 503 with
/// `reason` from now on (the first failure wins) while the others stop.
pub(crate) fn mark_failed(reason: String) {
    lock(failure_slot()).get_or_insert(reason);
}

/// Why the process is failing, if a stage failed fatally.
pub(crate) fn failure() -> Option<String> {
    lock(failure_slot()).clone()
}

/// A new run starts healthy.
pub(crate) fn clear_failure() {
    *lock(failure_slot()) = None;
}

/// `/health`: `Ok` while no stage failed fatally.
pub(crate) fn liveness() -> Result<(), String> {
    failure().map_or(Ok(()), Err)
}

fn registry() -> &'static Mutex<Vec<Arc<StageStatus>>> {
    static STAGES: OnceLock<Mutex<Vec<Arc<StageStatus>>>> = OnceLock::new();
    STAGES.get_or_init(|| Mutex::new(Vec::new()))
}

/// The status of stage `name`, created on first use.
pub(crate) fn stage_status(name: &'static str) -> Arc<StageStatus> {
    let mut all = lock(registry());
    if let Some(status) = all.iter().find(|s| s.name == name) {
        return status.clone();
    }
    let status = Arc::new(StageStatus {
        name,
        started: AtomicBool::new(false),
        assigned: AtomicU64::new(0),
        replaying: Mutex::new(Vec::new()),
        lag: Mutex::new(None),
    });
    all.push(status.clone());
    status
}

/// Every stage started in this process.
pub(crate) fn started_stages() -> Vec<Arc<StageStatus>> {
    lock(registry())
        .iter()
        .filter(|s| s.is_started())
        .cloned()
        .collect()
}

/// `Ok` when every started stage has partitions, is not replaying and its
/// consumer lag is known and at most [`READY_MAX_LAG_MESSAGES`]; otherwise a
/// short reason.
pub(crate) fn readiness() -> Result<(), String> {
    liveness()?;
    let started = started_stages();
    if let Some(reason) = started.iter().find_map(|s| s.not_ready_reason()) {
        return Err(reason);
    }
    if started.is_empty() {
        return Err("no stage started yet".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_stage_fails_health_and_readiness_until_a_new_run() {
        clear_failure();
        assert_eq!(liveness(), Ok(()));
        mark_failed("merge: fenced".into());
        mark_failed("ingest: stopped after merge".into());
        assert_eq!(
            liveness(),
            Err("merge: fenced".to_string()),
            "first failure wins"
        );
        assert_eq!(readiness(), Err("merge: fenced".to_string()));
        clear_failure();
        assert_eq!(liveness(), Ok(()));
    }

    #[test]
    fn a_stage_is_ready_only_assigned_replayed_and_caught_up() {
        // A name no other test uses: the registry is process-wide.
        let status = stage_status("health-test");
        status.reset();
        status.mark_started();
        let reason = || status.not_ready_reason();
        assert_eq!(
            reason().as_deref(),
            Some("health-test: no partitions assigned")
        );
        status.partitions_assigned(2);
        let replaying = status.replaying_count();
        replaying.store(1, Ordering::Relaxed);
        assert_eq!(
            reason().as_deref(),
            Some("health-test: replaying 1 partitions")
        );
        replaying.store(0, Ordering::Relaxed);
        assert_eq!(
            reason().as_deref(),
            Some("health-test: consumer lag not known yet")
        );
        let (a, b): (Arc<str>, Arc<str>) = ("input-a".into(), "input-b".into());
        status.update_lag(|lag| {
            lag.insert((a.clone(), 0), 600);
            lag.insert((a.clone(), 1), -1);
        });
        assert_eq!(
            reason().as_deref(),
            Some("health-test: consumer lag not known yet")
        );
        status.update_lag(|lag| lag.insert((a.clone(), 1), 401));
        assert_eq!(
            reason().as_deref(),
            Some("health-test: consumer lag 1001 messages on input-a")
        );
        status.update_lag(|lag| lag.insert((a.clone(), 1), 400));
        assert_eq!(reason(), None, "1000 messages of lag is caught up");
        // Partition 0 of a second input is its own entry: it neither
        // overwrites input-a's partition 0 nor adds to input-a's total.
        status.update_lag(|lag| lag.insert((b.clone(), 0), 900));
        assert_eq!(
            status.update_lag(|lag| lag.get(&(a.clone(), 0)).copied()),
            Some(600)
        );
        assert_eq!(reason(), None, "each input topic is within its own bound");
        status.update_lag(|lag| lag.insert((b.clone(), 1), 101));
        assert_eq!(
            reason().as_deref(),
            Some("health-test: consumer lag 1001 messages on input-b")
        );
        status.update_lag(|lag| lag.insert((b.clone(), 1), -1));
        assert_eq!(
            reason().as_deref(),
            Some("health-test: consumer lag not known yet"),
            "an unknown partition of any input is not ready"
        );
        status.update_lag(|lag| lag.remove(&(b.clone(), 1)));
        assert_eq!(reason(), None);
        status.partitions_revoked(2);
        assert_eq!(
            reason().as_deref(),
            Some("health-test: no partitions assigned")
        );
        status.reset();
    }
}
