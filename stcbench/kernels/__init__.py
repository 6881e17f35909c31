"""CPU performance kernels of the fast path: the fused STC step, Winograd convolutions, the faster circuit gates
and staggered allocation. They compute the same numbers as the cells (tests/models) and know cells only through
what a cell declares (`fused_step_spec`, stcbench/cells/fused.py)."""
