"""The ``trunkline`` command: ``serve`` and ``cert`` run the gateway; the rest are SDK clients.

It owns argument parsing, terminal output and exit codes, and nothing else: gateway commands go
through ``gateway``/``config``, client commands only through ``sdk``. No other package imports it.
"""
