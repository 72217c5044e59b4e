"""The inference engine (memory bank, objects, test-time correction) and training steps."""
