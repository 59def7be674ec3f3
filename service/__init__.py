"""wavernn-tts service: HTTP API, engine and command line. Imports models, never the reverse."""
