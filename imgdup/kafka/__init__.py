"""imgdup's own Kafka clients outside the workers: the producer the API and ops use, topic creation."""
