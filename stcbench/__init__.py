"""stcbench: spiking recurrent neurons benchmarked on spatio-temporal prediction."""

__version__ = "0.1.0"
