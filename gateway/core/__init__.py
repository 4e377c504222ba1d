"""The core: errors, settings, crypto, tokens and passwords, telemetry and log lines.

The bottom layer: it imports nothing of this project's, and every other layer
may import it (see the README's "Layout" and tests/unit/test_layers.py).
"""
