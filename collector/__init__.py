"""The collector: sources behind one small interface, the normalizer that maps metric
dialects to one vocabulary, and cost computation. It writes to the store; nothing here
imports the autoscaler, the alerts or the dashboard.
"""
