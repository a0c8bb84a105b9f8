"""The autoscaler: pure policies, the engine that applies their decisions through a
target, off-hours schedules, and the replay simulator.

Nothing here imports the collector, the alerts or the dashboard; readings come from the
store, replica counts go to a target (``autoscaler.targets``).
"""
