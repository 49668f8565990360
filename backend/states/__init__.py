"""State sets: hidden states over a corpus, their sources and annotations, and reading them."""
