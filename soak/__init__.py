"""`make soak`: chaos under load: kill buildsd processes mid-workload, then check invariants."""
