"""Lightning training and evaluation: config schema, modules, runners."""
