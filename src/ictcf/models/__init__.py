"""The CF prediction models: task definitions, the HUST-19 CF network, the comparison models
(gradient boosting, logistic regression) and model artefacts."""

from ictcf.models.artefact import LoadedArtefact, load_model, save_model, training_data_sha256
from ictcf.models.cf_model import CFModel, fit_cf_model
from ictcf.models.cf_network import CFNetwork, CFNetworkConfig, train_cf_network
from ictcf.models.estimators import (
    MODEL_KINDS,
    GradientBoostingConfig,
    LogisticConfig,
    ModelConfig,
    default_model_config,
)
from ictcf.models.tasks import MORBIDITY, MORTALITY, TASKS, TaskSpec, get_task, task_labels

__all__ = [
    "MODEL_KINDS",
    "MORBIDITY",
    "MORTALITY",
    "TASKS",
    "CFModel",
    "CFNetwork",
    "CFNetworkConfig",
    "GradientBoostingConfig",
    "LoadedArtefact",
    "LogisticConfig",
    "ModelConfig",
    "TaskSpec",
    "default_model_config",
    "fit_cf_model",
    "get_task",
    "load_model",
    "save_model",
    "task_labels",
    "train_cf_network",
    "training_data_sha256",
]
