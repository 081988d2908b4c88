"""The HUST-19 prediction models: task definitions, the CF network and model artefacts."""

from ictcf.models.artefact import LoadedArtefact, load_model, save_model, training_data_sha256
from ictcf.models.cf_model import CFModel, fit_cf_model
from ictcf.models.cf_network import CFNetwork, CFNetworkConfig, train_cf_network
from ictcf.models.tasks import MORBIDITY, MORTALITY, TASKS, TaskSpec, get_task, task_labels

__all__ = [
    "MORBIDITY",
    "MORTALITY",
    "TASKS",
    "CFModel",
    "CFNetwork",
    "CFNetworkConfig",
    "LoadedArtefact",
    "TaskSpec",
    "fit_cf_model",
    "get_task",
    "load_model",
    "save_model",
    "task_labels",
    "train_cf_network",
    "training_data_sha256",
]
