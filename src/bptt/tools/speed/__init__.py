"""Speed: the training throughput of the book's language models against this machine's GEMM
ceiling (``bench``, what ``bptt bench`` runs)."""
