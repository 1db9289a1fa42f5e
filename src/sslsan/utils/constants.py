"""Constants several layers share, importable without torch (command-line help reads them)."""

SAMPLE_RATE = 16000  # the models' audio rate (Hz)
