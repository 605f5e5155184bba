"""Models built from bptt layers: feed-forward nets, language models, sequence models."""
