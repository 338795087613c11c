"""The work of each pipeline step (index, verify, cluster) on a context of ports; no Kafka, no Faust."""
