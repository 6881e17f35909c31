"""The run engine: one config mechanism (schema), the run folder, the Trainer, loggers and callbacks,
checkpoints and records, shared by every task (stcbench.engine.task; video prediction and the memory
probes plug into it)."""
