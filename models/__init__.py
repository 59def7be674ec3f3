"""WaveRNN text-to-speech models: configs, audio, features and networks (no HTTP here)."""
