"""STM-Cycle: space-time memory networks with cyclic training and test-time correction."""
