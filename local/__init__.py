"""The local runtime and simulators: the whole hub on one machine, never deployed."""
