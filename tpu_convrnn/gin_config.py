"""gin bindings: the only place where gin touches the library (configurables at the edges).

Configurable names:

* ``model``: ``tpu_convrnn.models.build_model`` (``model.base``, ``model.cells``,
  ``model.depths``, ``model.add_edges``, ``model.remove_edges``, ``model.presentation``,
  ``model.times``, ``model.image_off``, ``model.readout``, ``model.image_size``,
  ``model.width``, ``model.num_classes``, ``model.dtype``);
* ``train``: ``tpu_convrnn.train.TrainConfig`` (batch, schedule, optimizer, loss, checkpoints);
* ``data``: ``tpu_convrnn.data.sources.DataConfig`` (source, file patterns, classes);
* ``execution``: ``execution.eliminate``, ``execution.remat``, ``execution.depthwise``,
  ``execution.fuse_convs`` (``tpu_convrnn.execution``: how the model is computed, not what;
  applied as the process default when the model is built);
* ``space``, ``study``: ``tpu_convrnn.search.config.SearchSpace`` / ``StudyConfig`` (what an
  architecture search explores and how it runs; ``gin/search/``).
"""
import gin

from tpu_convrnn import execution as execution_lib
from tpu_convrnn import models
from tpu_convrnn.data.sources import DataConfig
from tpu_convrnn.search.config import SearchSpace, StudyConfig
from tpu_convrnn.train import TrainConfig

model = gin.external_configurable(models.build_model, "model")
train = gin.external_configurable(TrainConfig, "train")
data = gin.external_configurable(DataConfig, "data")
space = gin.external_configurable(SearchSpace, "space")
study = gin.external_configurable(StudyConfig, "study")


@gin.configurable("execution")
def execution(eliminate: bool = True, remat: bool = False, depthwise: str = "auto",
              fuse_convs: bool = False):
    """Makes the gin execution settings the process default (returns them)."""
    return execution_lib.set_default(eliminate=eliminate, remat=remat, depthwise=depthwise,
                                     fuse_convs=fuse_convs)


def configured_model():
    """The model the parsed gin config describes; its execution settings are applied first."""
    execution()
    return model()


def configured_train() -> TrainConfig:
    return train()


def configured_data() -> DataConfig:
    return data()

