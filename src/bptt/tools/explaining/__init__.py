"""Explaining: what shows how a model works and how data and gradients flow through time:
``explain`` (each call, its shapes and equations, recorded, numbered and reported), equations
(parsed from the layers' docstrings), ``gradflow`` (||dL/dh_t|| over time) and the plots."""
