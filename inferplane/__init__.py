"""inferplane's core: what every room shares and nothing more (the configuration, the
store and the vocabulary of metrics). It imports no room."""

__version__ = "0.1.0"
