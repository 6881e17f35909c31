"""Long-term memory probes from the TC-LIF and CE-LIF papers.

* `tasks`: adding problem, copy memory, sequential and permuted sequential digits,
  generated deterministically from a seed.
* `network`: feed-forward / recurrent dense networks of any registered cell (linear synapse).
* `module`, `runner`: Lightning training (`stcbench fit --config memory/<task>`).
* `analysis`: gradient through time (TC-LIF Fig. 4, CE-LIF Fig. 6).
* `suite`: `run_memory_suite`, the table and figures of `stcbench bench --suite memory`.
"""


def __getattr__(name):
    if name == "run_memory_suite":   # lazy: the suite imports Lightning
        from stcbench.memory.suite import run_memory_suite

        return run_memory_suite
    raise AttributeError(f"module 'stcbench.memory' has no attribute {name!r}")
