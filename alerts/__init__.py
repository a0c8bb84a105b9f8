"""Alerts: rules over the store's readings, firing/resolved state with noise control, and
channels (email, webhook, Alertmanager) that deliver notices. Reads the store, writes
alert history and delivery attempts to it; imports no other room but the collector's
sample vocabulary.
"""
