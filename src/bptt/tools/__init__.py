"""Tools above training, grouped by job: ``explaining`` (explain, gradient flow, plots),
``exchange`` (PyTorch, ONNX, the book's files), ``verification`` (the gradient-check suite) and
``speed`` (``bptt bench``)."""
