"""Shared pieces every process uses: settings, the error tree and cross-process messages."""
