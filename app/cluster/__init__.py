"""Work shared by replicas on PostgreSQL: roles, the task queue, job chunks, wake-ups."""
