"""The command line's subcommands, one module per part of the package it drives (``regnet``, ``detection``,
``deploy``, ``data``, ``evaluation``, ``train``, ``analysis``, ``latency``): each defines ``register(subparsers)``
and turns arguments into calls of the library below it. ``regnet_explore.cli`` assembles them."""
