"""sslsan: visual sound source localization that knows when nothing visible is sounding."""

__version__ = "0.1.0"
