//! Leaving the group on a clean stop.
//!
//! Every stage thread is a static group member (`group.instance.id`), and the
//! coordinator keeps a static member listed, its partitions unassigned, until
//! `session.timeout.ms` has passed, unless the member sends LeaveGroup.
//! librdkafka sends it on `unsubscribe`, but only for a member that has
//! joined (one with a member id), and only once the revocation is done. So a
//! stopping stage lets a join in flight finish first, and afterwards polls
//! until the LeaveGroup has gone out; the consumer's close then waits for
//! its answer.

use std::ffi::c_void;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

/// Longest a stopping stage waits for a join in flight to finish. A static
/// member known to the coordinator gets its answer at once; a new one waits
/// for the rebalance it started.
pub(super) const JOIN_GRACE: Duration = Duration::from_secs(5);

/// Longest a stopping stage waits, after its partitions were revoked, for
/// librdkafka to issue the LeaveGroup.
pub(super) const LEAVE_GRACE: Duration = Duration::from_secs(2);

/// Whether the consumer holds a member id: it has joined, and has not yet
/// issued its LeaveGroup (librdkafka clears the id when it does).
fn has_member_id<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> bool {
    let rk = consumer.client().native_ptr();
    #[allow(unsafe_code)]
    // SAFETY: `rk` is the live client `consumer` owns. rd_kafka_memberid
    // returns null or a NUL-terminated copy the caller owns, freed here with
    // rd_kafka_mem_free as its documentation asks.
    unsafe {
        let id = rdkafka::bindings::rd_kafka_memberid(rk);
        if id.is_null() {
            return false;
        }
        let set = *id != 0;
        rdkafka::bindings::rd_kafka_mem_free(rk, id.cast::<c_void>());
        set
    }
}

/// Polls (serving callbacks, discarding messages: nothing read now is
/// processed or committed) until `done` or `limit` has passed; returns
/// whether `done` held.
fn poll_until<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    limit: Duration,
    done: impl Fn(&BaseConsumer<C>) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done(consumer) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        let _ = consumer.poll(Duration::from_millis(10));
    }
}

/// Waits for a join in flight, so that `unsubscribe` can leave the group.
/// Returns whether the consumer is a member.
pub(super) fn await_join<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> bool {
    poll_until(consumer, JOIN_GRACE, has_member_id)
}

/// After `unsubscribe` and the revocation: waits until librdkafka has issued
/// the LeaveGroup. Returns whether it has.
pub(super) fn await_leave<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> bool {
    poll_until(consumer, LEAVE_GRACE, |c| !has_member_id(c))
}
