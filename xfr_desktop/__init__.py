"""XFR Desktop: explainable face recognition for forensic examiners."""

__version__ = "0.1.0"
