"""Background calls: ``AsyncClient.submit`` runs a feature call off the critical path.

Owns the job record, its stores (a ``jobs`` table next to the ledger's, in SQLite or
PostgreSQL) and the bounded worker queue. Jobs keep their own small table, created by the job
store with ``CREATE TABLE IF NOT EXISTS`` and versioned in ``jobs_schema``, rather than a ledger
migration: the job queue can then ship and move independently of the ledger's numbered schema.
Imports the runtime's values and the ledger's records; must not import the gateway or CLI.
"""

from buttress.jobs.queue import JobQueue
from buttress.jobs.store import Job, JobStatus, JobStore, PostgresJobStore, SQLiteJobStore

__all__ = ["Job", "JobQueue", "JobStatus", "JobStore", "PostgresJobStore", "SQLiteJobStore"]
