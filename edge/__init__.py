"""edge: Gemma on the device, served over the hosted model's HTTP APIs."""

__version__ = "0.1.0"
