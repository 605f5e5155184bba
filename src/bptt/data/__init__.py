"""Data sets and corpora: generated toy sets, MNIST, Penn Treebank, text files, batching."""
