"""Type stubs of taskrobust."""

import os
from typing import Any, Callable, Optional, Protocol, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import bounds as bounds

__version__: str
METHODS: Tuple[str, ...]

ArrayLike = npt.ArrayLike
Vector = npt.NDArray[np.float64]

class Problem:
    """A minimax problem min_theta max_i f_i(theta): M tasks and a feasible set."""

    @staticmethod
    def least_squares(
        xs: Sequence[ArrayLike], ys: Sequence[ArrayLike], radius: Optional[float] = None
    ) -> "Problem": ...
    @staticmethod
    def logistic(
        xs: Sequence[ArrayLike],
        ys: Sequence[ArrayLike],
        *,
        l2: float,
        radius: Optional[float] = None,
    ) -> "Problem": ...
    @staticmethod
    def quadratic(
        a: Union[ArrayLike, Sequence[ArrayLike]],
        c: Union[ArrayLike, Sequence[ArrayLike]],
        b: Optional[ArrayLike] = None,
        radius: Optional[float] = None,
    ) -> "Problem": ...
    @staticmethod
    def from_file(path: Union[str, "os.PathLike[str]"]) -> "Problem": ...
    @property
    def kind(self) -> str: ...
    @property
    def num_tasks(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def radius(self) -> Optional[float]: ...
    def losses(self, theta: ArrayLike) -> Vector: ...
    def evaluate(self, theta: ArrayLike, weights: ArrayLike) -> Tuple[Vector, Vector]: ...
    def task_gradient(self, task: int, theta: ArrayLike) -> Vector: ...
    def project(self, theta: ArrayLike) -> Vector: ...

class Certificate:
    """How lower_bound was certified."""

    @property
    def kind(self) -> str: ...
    @property
    def error_bound(self) -> float: ...
    @property
    def note(self) -> str: ...

class SolveResult:
    """A solve's returned point, certificate, gap and history."""

    @property
    def method(self) -> str: ...
    @property
    def iterations(self) -> int: ...
    @property
    def max_loss(self) -> float: ...
    @property
    def lower_bound(self) -> Optional[float]: ...
    @property
    def gap(self) -> Optional[float]: ...
    @property
    def certificate(self) -> Certificate: ...
    @property
    def theta(self) -> Vector: ...
    @property
    def losses(self) -> Vector: ...
    @property
    def weights(self) -> Vector: ...
    @property
    def seconds(self) -> float: ...
    @property
    def mu(self) -> Optional[float]: ...
    @property
    def step(self) -> Optional[float]: ...
    @property
    def worst_task(self) -> int: ...
    @property
    def termination(self) -> str: ...
    @property
    def history(self) -> dict[str, np.ndarray]: ...
    def as_dict(self) -> dict[str, Any]: ...

class Method(Protocol):
    """What run_method runs: one step of your method."""

    def step(self, problem: Problem, theta: Vector, iteration: int) -> Tuple[ArrayLike, ArrayLike]: ...

def solve(
    problem: Problem,
    method: str = "softmax-gd",
    mu: Optional[float] = None,
    step: Optional[float] = None,
    iters: int = 200,
    seed: int = 0,
    callback: Optional[Callable[[int, float, Vector], Any]] = None,
    *,
    init: Optional[ArrayLike] = None,
    distance: Optional[float] = None,
    weight_step: Optional[float] = None,
    batch_size: int = 32,
    ema: Optional[float] = None,
    certify_every: Optional[int] = None,
) -> SolveResult:
    """Solve min_theta max_i f_i(theta) with a built-in method (as `taskrobust solve`)."""

def certify(problem: Problem, theta: ArrayLike, weights: Optional[ArrayLike] = None) -> SolveResult:
    """A certified lower bound on OPT, and the gap, at any point theta."""

def run_method(
    problem: Problem,
    method: Method,
    iters: int = 200,
    *,
    init: Optional[ArrayLike] = None,
    name: Optional[str] = None,
    certify_every: Optional[int] = None,
) -> SolveResult:
    """Run a method written in Python through the core's runner, certified."""

def transfer(
    scenario: Union[str, "os.PathLike[str]", dict[str, Any]], seed: Optional[int] = None
) -> dict[str, Any]:
    """`taskrobust transfer --format json` as a dict."""

def reproduce(
    out: Union[str, "os.PathLike[str]"] = "figures",
    quick: bool = True,
    only: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """`taskrobust reproduce`; returns report.json as a dict."""
