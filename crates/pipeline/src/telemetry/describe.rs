//! The name, unit and HELP text of every metric rampart exports, described
//! once when the recorder is installed. The handles themselves are
//! registered beside the events that move them (`stage`, `ingest`, `merge`,
//! `domain`); every name here must match one registered there.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

use super::{CHECKPOINT_DURATION, WINDOW_CLOSE_LATENCY};

/// HELP texts of every metric rampart exports.
pub(crate) fn describe_all() {
    describe_counter!(
        "rampart_log_lines_suppressed_total",
        Unit::Count,
        "Warning lines not logged because their site (site: delivery_failed, produce_failed, client_error, consumer_retried, unassigned_message) had logged 10 in the last 60 s; the next line logged says how many it held back (suppressed=N)."
    );
    describe_counter!(
        "rampart_http_connections_dropped_total",
        Unit::Count,
        "Connections the metrics/health server closed early, by reason: evicted (all 64 slots taken; the oldest connection that had not sent its request gave its slot up), busy (all slots writing; answered 503), head_timeout (no request within 3 s; 408), write_timeout (response not taken within 10 s)."
    );
    describe_counter!(
        "rampart_received_events_total",
        Unit::Count,
        "Attack events received in valid input batches (before dedup), by stage."
    );
    describe_counter!(
        "rampart_received_bytes_total",
        Unit::Bytes,
        "Payload bytes of input messages read, by stage."
    );
    describe_counter!(
        "rampart_received_messages_total",
        Unit::Count,
        "Kafka messages read from the stage's input topic (replayed ones excluded), by stage."
    );
    describe_counter!(
        "rampart_sent_events_total",
        Unit::Count,
        "Records handed to the producer: partials (ingest) or final rollups (merge)."
    );
    describe_counter!(
        "rampart_sent_bytes_total",
        Unit::Bytes,
        "Payload bytes of the records the stage produced (DLQ excluded), by stage."
    );
    describe_counter!(
        "rampart_unique_events_total",
        Unit::Count,
        "Events not seen before within the dedup horizon (aggregated once)."
    );
    describe_counter!(
        "rampart_discarded_events_total",
        Unit::Count,
        "Events not aggregated, by reason: duplicate (dedup) or late (window already final; counted as late_events)."
    );
    describe_counter!(
        "rampart_discarded_messages_total",
        Unit::Count,
        "Whole input messages rejected and dead-lettered, by stage and validation reason."
    );
    describe_counter!(
        "rampart_skipped_documents_total",
        Unit::Count,
        "JSON input documents that are no attack event by their format's rule (EVE stats and protocol logs, OCSF classes other than 4001/2004, ECS documents of other categories), by format: counted, not dead-lettered."
    );
    describe_counter!(
        "rampart_errors_total",
        Unit::Count,
        "Errors by stage and error_type (invalid_input, malformed_partials, delivery_failed, checkpoint_aborted, consumer_retried: a connection-level consumer error librdkafka retries without skipping records)."
    );
    describe_counter!(
        "rampart_merge_partials_dropped_total",
        Unit::Count,
        "Partials the merge did not merge, by reason: duplicate (that input partition's partial for the window and key was merged already), after_close (that input partition had closed the window) or after_final (the window was final). All are rewrites after an at-least-once crash; under exactly-once they stay 0."
    );
    describe_counter!(
        "rampart_enrich_lookups_total",
        Unit::Count,
        "Enrichment lookups by database (country, asn, sector) and result (hit: an answer; miss: unknown), counted per source the origin table answers (every IPv4 /24 that lies in one network of the databases: nearly all events) and otherwise per address the ingest resolves (it caches answers per address and prefix). Misses only: a database of the wrong kind, or an asset table that covers nothing."
    );
    describe_gauge!(
        "rampart_memory_dedup_budget_bytes",
        Unit::Bytes,
        "Each owned input partition's dedup budget under processing.memory_budget (re-divided when partitions move)."
    );
    describe_gauge!(
        "rampart_memory_owned_partitions",
        Unit::Count,
        "Input partitions this process owns, among which processing.memory_budget is divided."
    );
    describe_counter!(
        "rampart_ingest_over_budget_events_total",
        Unit::Count,
        "Events counted under their country's other:<country> origin prefix because their window already held keys.prefix_cells prefixes on the partition."
    );
    describe_counter!(
        "rampart_ingest_over_budget_windows_total",
        Unit::Count,
        "Windows of an input partition that reached keys.prefix_cells."
    );
    describe_counter!(
        "rampart_ingest_folded_keys_total",
        Unit::Count,
        "Origin prefixes and ASNs published under other:<country> instead of their own key (keys.publish_top)."
    );
    describe_counter!(
        "rampart_ingest_capped_count_maps_total",
        Unit::Count,
        "Partial port or rule count maps cut to keys.count_entries (the rest in the rollup's *_overflow)."
    );
    describe_counter!(
        "rampart_ingest_idle_advances_refused_total",
        Unit::Count,
        "Idle watermark advances not taken because the partition's checkpoint already records the most it can (they wait until windows close)."
    );
    describe_counter!(
        "rampart_ingest_clock_entries_refused_total",
        Unit::Count,
        "Ingest clock steps not recorded because the partition's checkpoint already records the most it can (a window held open for hours): the trusted clock lags until windows close."
    );
    describe_counter!(
        "rampart_dlq_messages_total",
        Unit::Count,
        "Messages written to the dead-letter topic, by stage."
    );
    describe_gauge!(
        "rampart_consumer_lag_messages",
        Unit::Count,
        "Messages between the stage's position and the partition's last stable offset, per input topic and partition (librdkafka statistics, 1 s)."
    );
    describe_gauge!(
        "rampart_watermark_lag_seconds",
        Unit::Seconds,
        "Wall clock minus the stage's event-time watermark (ingest: lowest partition watermark; merge: start of the oldest non-final window)."
    );
    describe_histogram!(
        WINDOW_CLOSE_LATENCY,
        Unit::Seconds,
        "Per window and partials partition holding keys of it: from the moment it became closable (the Kafka timestamp of the partials message carrying the last input partition's window-close marker, written when that partition's watermark passed window end + allowed lateness) to its final rollups being handed to the producer (the transaction commit follows within processing.caught_up_checkpoint_after, at most processing.checkpoint_interval)."
    );
    describe_counter!(
        "rampart_windows_closed_total",
        Unit::Count,
        "Windows made final by the merge stage, counted once per partials partition holding keys of the window (a window with keys in every partition counts topics.partials_partitions times)."
    );
    describe_counter!(
        "rampart_rollups_published_total",
        Unit::Count,
        "Final rollups produced to the rollup topic, by dimension."
    );
    describe_gauge!(
        "rampart_dedup_entries",
        Unit::Count,
        "Fingerprints remembered by the ingest dedup tables."
    );
    describe_gauge!(
        "rampart_dedup_table_bytes",
        Unit::Bytes,
        "Memory of the ingest dedup tables."
    );
    describe_gauge!(
        "rampart_dedup_evicted_early_entries",
        Unit::Count,
        "Dedup entries evicted before their horizon because the memory budget was reached."
    );
    describe_gauge!(
        "rampart_assigned_partitions",
        Unit::Count,
        "Input partitions assigned to the stage."
    );
    describe_gauge!(
        "rampart_replaying_partitions",
        Unit::Count,
        "Assigned partitions still replaying input to rebuild state after a restart or rebalance."
    );
    describe_counter!(
        "rampart_checkpoint_commits_total",
        Unit::Count,
        "Checkpoints committed (a Kafka transaction with exactly-once, an offset commit with at-least-once)."
    );
    describe_histogram!(
        CHECKPOINT_DURATION,
        Unit::Seconds,
        "Per committed checkpoint, by stage: waiting for the delivery of the output still in flight, then sending the offsets and committing the transaction (exactly-once) or committing the offsets (at-least-once). The stage thread reads nothing meanwhile, and the output becomes visible to read_committed readers at its end."
    );
    describe_counter!(
        "rampart_checkpoint_aborts_total",
        Unit::Count,
        "Checkpoints that failed and were aborted and rewound."
    );
    describe_counter!(
        "rampart_rebalances_total",
        Unit::Count,
        "Consumer group rebalance callbacks (assign and revoke), by stage."
    );
    describe_gauge!(
        "rampart_ready",
        Unit::Count,
        "1 when /ready answers 200 (every stage assigned, not replaying, consumer lag small), else 0."
    );
    describe_gauge!(
        "rampart_process_resident_memory_bytes",
        Unit::Bytes,
        "Resident set size of the process (/proc/self/statm)."
    );
    describe_counter!(
        "rampart_attack_sector_events_total",
        Unit::Count,
        "Unique attack events by target sector, from final TARGET_SECTOR rollups (advances when windows close)."
    );
    describe_counter!(
        "rampart_attack_origin_events_total",
        Unit::Count,
        "Unique attack events by origin country (top 20 by volume, the rest `other`), from final ORIGIN_COUNTRY rollups (advances when windows close)."
    );
    describe_counter!(
        "rampart_attack_sector_origin_events_total",
        Unit::Count,
        "Unique attack events by target sector and origin country (same country labels as rampart_attack_origin_events_total), from final COUNTRY_SECTOR rollups."
    );
    describe_counter!(
        "rampart_attack_kind_events_total",
        Unit::Count,
        "Unique attack events by attack kind, from the top_kinds of final TARGET_SECTOR rollups (advances when windows close)."
    );
}
