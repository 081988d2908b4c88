"""The HUST-19 clinical-feature network: a seven-layer dense network trained with Adam.

Layers: the input layer, five hidden ReLU layers each followed by dropout, and the output layer
(three softmax outputs for morbidity, one sigmoid output for mortality), as described by Ning
et al., Nat. Biomed. Eng. 4, 1197-1207 (2020). The learning rate decays per update step i as
lr_i = lr / (1 + d * i). Training stops early on an inner stratified validation split of the
training data and restores the weights of the best validation loss. Classes are weighted by
the inverse of their frequency in the training data.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from ictcf.errors import InputError, ModelError

logger = logging.getLogger(__name__)

#: Minimum number of samples per class for a stratified inner validation split.
MIN_SAMPLES_PER_CLASS_FOR_VALIDATION = 2


@dataclass(frozen=True)
class CFNetworkConfig:
    """Hyperparameters of the CF network and its training.

    Attributes
    ----------
    hidden_sizes : tuple of int
        Widths of the five hidden layers (default 128, 64, 64, 32, 16).
    dropout : float
        Dropout probability after each hidden layer (default 0.3).
    learning_rate : float
        Initial Adam learning rate (default 1e-3).
    decay : float
        d in lr_i = lr / (1 + d * i), i = update step (default 1e-3: the rate halves after
        1,000 updates).
    weight_decay : float
        Adam L2 penalty (default 1e-4).
    batch_size : int
        Samples per update (default 128).
    max_epochs : int
        Upper limit on passes over the training data (default 300).
    patience : int
        Epochs without a lower validation loss before training stops (default 30).
    validation_fraction : float
        Fraction of the training data held out, stratified by class, for early stopping
        (default 0.15). 0 trains for ``max_epochs`` without early stopping.
    seed : int
        Seed of weight initialisation, dropout, shuffling and the validation split.
    n_threads : int
        CPU threads torch may use while training and predicting (default 1). On a 2-core
        x86-64 machine one 10-fold morbidity run took 21.4 s with one thread and 24.5 s with
        two, presumably because the layers are too small to gain from splitting.
    """

    hidden_sizes: tuple[int, ...] = (128, 64, 64, 32, 16)
    dropout: float = 0.3
    learning_rate: float = 1e-3
    decay: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    max_epochs: int = 300
    patience: int = 30
    validation_fraction: float = 0.15
    seed: int = 0
    n_threads: int = 1

    def __post_init__(self) -> None:
        problems = []
        if not self.hidden_sizes or any(size < 1 for size in self.hidden_sizes):
            problems.append(f"hidden_sizes {self.hidden_sizes!r} must be positive widths")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout {self.dropout!r} must be in [0, 1)")
        if self.learning_rate <= 0 or self.decay < 0 or self.weight_decay < 0:
            problems.append("learning_rate must be positive and decay, weight_decay >= 0")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            problems.append("batch_size, max_epochs and patience must be at least 1")
        if not 0.0 <= self.validation_fraction < 0.5:
            problems.append(f"validation_fraction {self.validation_fraction!r} must be in [0, 0.5)")
        if self.n_threads < 1:
            problems.append(f"n_threads {self.n_threads!r} must be at least 1")
        if problems:
            raise InputError("Invalid CF network configuration: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-ready dict."""
        values = asdict(self)
        values["hidden_sizes"] = list(self.hidden_sizes)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CFNetworkConfig:
        """Rebuild a configuration written by :meth:`to_dict`."""
        values = dict(values)
        if "hidden_sizes" in values:
            values["hidden_sizes"] = tuple(int(size) for size in values["hidden_sizes"])
        return cls(**values)


class CFNetwork(nn.Module):
    """Dense network: input, ``len(hidden_sizes)`` hidden ReLU + dropout layers, output logits.

    Parameters
    ----------
    n_inputs : int
        Number of features.
    n_outputs : int
        3 for morbidity (softmax over logits), 1 for mortality (sigmoid of the logit).
    hidden_sizes : tuple of int
        Hidden layer widths.
    dropout : float
        Dropout probability after each hidden layer.
    """

    def __init__(
        self, n_inputs: int, n_outputs: int, hidden_sizes: tuple[int, ...], dropout: float
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_inputs
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.layers = nn.Sequential(*layers)
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return logits of shape (n_samples, n_outputs)."""
        logits: torch.Tensor = self.layers(features)
        return logits


def n_outputs_for(n_classes: int) -> int:
    """Return the output width: one sigmoid output for two classes, else one per class."""
    return 1 if n_classes == 2 else n_classes


@dataclass
class TrainingResult:
    """A trained network with its training record.

    Attributes
    ----------
    network : CFNetwork
        In evaluation mode, with the weights of the best validation loss.
    n_classes : int
    best_epoch : int
        1-based epoch whose weights were kept.
    epochs_run : int
    class_weights : list of float
        Loss weight of each class, n / (n_classes * n_c) over the fitted samples.
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``validation_loss`` (NaN without validation).
    """

    network: CFNetwork
    n_classes: int
    best_epoch: int
    epochs_run: int
    class_weights: list[float]
    history: list[dict[str, float]] = field(default_factory=list)


@contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Limit torch's intra-op threads inside the block and restore the previous number after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def learning_rate_factor(step: int, decay: float) -> float:
    """Return the factor 1 / (1 + decay * step) applied to the initial learning rate."""
    return 1.0 / (1.0 + decay * step)


def check_training_data(X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
    """Check a feature matrix and its class indices before any model is fitted.

    Raises
    ------
    InputError
        If the shapes disagree, a class index lies outside ``[0, n_classes)``, fewer than two
        classes are present, or a feature is NaN or infinite.
    """
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise InputError(
            f"Training data shapes disagree: X {X.shape}, y {y.shape}; expected "
            "(n_samples, n_features) and (n_samples,)."
        )
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(f"Class indices must lie in [0, {n_classes - 1}]; got {sorted(set(y))}.")
    if len(np.unique(y)) < 2:
        raise InputError(
            f"Training needs at least two classes; got {len(y)} samples of classes "
            f"{sorted(set(y.tolist()))}."
        )
    if not np.isfinite(X).all():
        raise InputError("Training features contain NaN or infinite values.")


def class_weights_for(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Return n / (n_classes * n_c) per class; a class absent from ``labels`` gets weight 0."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = len(labels) / (n_classes * counts[present])
    return weights


def _loss_function(n_classes: int, weights: np.ndarray) -> Any:
    weight_tensor = torch.as_tensor(weights, dtype=torch.float32)
    if n_classes == 2:

        def binary_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            sample_weight = weight_tensor[target]
            losses = nn.functional.binary_cross_entropy_with_logits(
                logits[:, 0], target.to(torch.float32), reduction="none"
            )
            return (losses * sample_weight).sum() / sample_weight.sum()

        return binary_loss
    return nn.CrossEntropyLoss(weight=weight_tensor)


def _split_validation(
    labels: np.ndarray, config: CFNetworkConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(len(labels))
    if config.validation_fraction == 0:
        return indices, indices[:0]
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    n_validation = round(config.validation_fraction * len(labels))
    if counts.min() < MIN_SAMPLES_PER_CLASS_FOR_VALIDATION or n_validation < len(counts):
        logger.warning(
            "too few samples per class (%s) for an early-stopping split; training %d epochs "
            "without early stopping",
            counts.tolist(),
            config.max_epochs,
        )
        return indices, indices[:0]
    fit_index, validation_index = train_test_split(
        indices,
        test_size=n_validation,
        stratify=labels,
        random_state=int(rng.integers(2**31 - 1)),
    )
    return np.sort(fit_index), np.sort(validation_index)


def train_cf_network(
    X: np.ndarray, y: np.ndarray, *, n_classes: int, config: CFNetworkConfig
) -> TrainingResult:
    """Train a CF network.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Normalised features (see ``ictcf.features.build_feature_matrix``).
    y : ndarray of shape (n_samples,), int
        Class indices in ``range(n_classes)``.
    n_classes : int
        2 (one sigmoid output) or more (softmax outputs).
    config : CFNetworkConfig
        Hyperparameters and seed. The same inputs and config give the same weights.

    Returns
    -------
    TrainingResult

    Raises
    ------
    InputError
        If shapes disagree, labels are out of range or fewer than two classes are present.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    check_training_data(X, y, n_classes)

    rng = np.random.default_rng(config.seed)
    fit_index, validation_index = _split_validation(y, config, rng)
    weights = class_weights_for(y[fit_index], n_classes)
    loss_function = _loss_function(n_classes, weights)

    generator = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))
    dropout_seed = int(rng.integers(2**31 - 1))
    X_fit = torch.from_numpy(X[fit_index])
    y_fit = torch.from_numpy(y[fit_index])
    X_validation = torch.from_numpy(X[validation_index])
    y_validation = torch.from_numpy(y[validation_index])

    # Dropout draws from torch's global generator, which has no per-module replacement; fork_rng
    # seeds it for this block only and restores the caller's state afterwards.
    with torch_threads(config.n_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(dropout_seed)
        network = CFNetwork(
            X.shape[1], n_outputs_for(n_classes), config.hidden_sizes, config.dropout
        )
        for module in network.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)
        optimiser = torch.optim.Adam(
            network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lr_lambda=lambda step: learning_rate_factor(step, config.decay)
        )

        history: list[dict[str, float]] = []
        best_loss = np.inf
        best_state = copy.deepcopy(network.state_dict())
        best_epoch = 0
        stale_epochs = 0
        n_fit = len(fit_index)
        epoch = 0
        for epoch in range(1, config.max_epochs + 1):
            network.train()
            order = torch.randperm(n_fit, generator=generator)
            total = 0.0
            for start in range(0, n_fit, config.batch_size):
                batch = order[start : start + config.batch_size]
                optimiser.zero_grad()
                loss = loss_function(network(X_fit[batch]), y_fit[batch])
                loss.backward()
                optimiser.step()
                scheduler.step()
                total += float(loss.detach()) * len(batch)
            train_loss = total / n_fit

            if len(validation_index):
                network.eval()
                with torch.no_grad():
                    validation_loss = float(loss_function(network(X_validation), y_validation))
            else:
                validation_loss = float("nan")
            history.append(
                {"epoch": epoch, "train_loss": train_loss, "validation_loss": validation_loss}
            )

            if not len(validation_index):
                continue
            if validation_loss < best_loss - 1e-6:
                best_loss = validation_loss
                best_state = copy.deepcopy(network.state_dict())
                best_epoch = epoch
                stale_epochs = 0
            else:
                stale_epochs += 1
                if stale_epochs >= config.patience:
                    break

        if len(validation_index):
            network.load_state_dict(best_state)
        else:
            best_epoch = epoch
        network.eval()

    logger.debug("trained %d epochs, kept epoch %d", epoch, best_epoch)
    return TrainingResult(
        network=network,
        n_classes=n_classes,
        best_epoch=best_epoch,
        epochs_run=epoch,
        class_weights=[float(weight) for weight in weights],
        history=history,
    )


def predict_probabilities(
    network: CFNetwork, X: np.ndarray, *, n_classes: int, n_threads: int = 1
) -> np.ndarray:
    """Return class probabilities.

    Parameters
    ----------
    network : CFNetwork
        A trained network.
    X : ndarray of shape (n_samples, n_features)
        Features built with the network's feature list and policy.
    n_classes : int
        Number of classes of the task.
    n_threads : int, optional
        CPU threads for torch (default 1).

    Returns
    -------
    ndarray of shape (n_samples, n_classes), float64
        Rows sum to 1. For two classes, column 1 is the sigmoid of the single logit.

    Raises
    ------
    ModelError
        If ``X`` has a different number of features than the network expects.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != network.n_inputs:
        raise ModelError(
            f"The model expects {network.n_inputs} features per patient but got an array of "
            f"shape {X.shape}; build the features with the model's own feature list."
        )
    network.eval()
    with torch_threads(n_threads), torch.no_grad():
        logits = network(torch.from_numpy(X)).to(torch.float64)
        if n_classes == 2:
            positive = torch.sigmoid(logits[:, 0])
            probabilities = torch.stack([1.0 - positive, positive], dim=1)
        else:
            probabilities = torch.softmax(logits, dim=1)
    return probabilities.numpy()
