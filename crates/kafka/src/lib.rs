//! rampart-kafka: rdkafka source and sink: consumer groups, transactions, topics, offsets with replay metadata
