"""Kafka messages -> steps -> Kafka messages: the Faust app, the error policy, the worker runtime."""
