"""Pipeline facts <-> Postgres rows, one module per aggregate; every write an idempotent upsert."""
