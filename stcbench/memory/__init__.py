"""Long-term memory probes from the TC-LIF and CE-LIF papers.

* `tasks`: adding problem, copy memory, sequential and permuted sequential digits,
  generated deterministically from a seed.
* `network`: feed-forward / recurrent dense networks of any registered cell (linear synapse).
* `module`, `runner`: Lightning training (`stcbench fit --config memory/<task>`).
* `analysis`: gradient through time (TC-LIF Fig. 4, CE-LIF Fig. 6).
* `suite`: the scales, the table and figures of `stcbench bench --suite memory` (its runs are planned and run by
  the engine's task suites, stcbench/reports/task_suite.py).
"""
