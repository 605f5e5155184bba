"""Exchange: weights to and from other formats: PyTorch (``interop``, ``torch_lm``; torch is
imported only when called), ONNX (``onnx_export``) and the book's ``.pkl`` files
(``book_import``, read without unpickling)."""
