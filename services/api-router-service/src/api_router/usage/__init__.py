"""Usage records: building them, exporting them to Kafka through a disk spool, auditing."""
