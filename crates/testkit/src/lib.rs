//! rampart-testkit: Starts a real Apache Kafka (KRaft, from Maven Central) for tests; random topic names
