//! rampart-pipeline: The ingest and merge stages: tasks, bounded channels, backpressure, shutdown, metrics
