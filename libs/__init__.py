"""STM-Cycle: space-time memory networks with cyclic training and test-time correction.

Scripts in the repository root import this package as `libs`; `make setup` also installs it (editable) as
`stm_cycle`, importable from any folder (pyproject.toml): `from stm_cycle.api import VideoSession`.
"""
