"""The convergence bounds of docs/THEORY.md, one function each (the core
crate's taskrobust::theory::bounds). Each takes the horizon t (updates of
theta) and the bound's constants and returns the bound as a float; t = 0
gives inf. Notation: m tasks, temperature mu, smoothness l, l_mu = l + g^2/mu,
task-gradient bound g, loss bound b, distance r from the start to a comparator.
"""

from ._taskrobust import bounds as _bounds

__all__ = [name for name in dir(_bounds) if not name.startswith("_")]
globals().update({name: getattr(_bounds, name) for name in __all__})
