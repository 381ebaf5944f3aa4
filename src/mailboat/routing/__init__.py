"""Where each recipient goes: the Route values (`route.py`) and the Router that picks them."""
