"""Verification: the float64 gradient checks of every layer and registered cell
(``gradcheck_suite``, what ``bptt gradcheck`` runs)."""
