"""gin bindings: the only place where gin touches the library (configurables at the edges).

Configurable names:

* ``model``: ``tpu_convrnn.models.build_model`` (``model.base``, ``model.cells``,
  ``model.depths``, ``model.add_edges``, ``model.remove_edges``, ``model.presentation``,
  ``model.times``, ``model.image_off``, ``model.readout``, ``model.image_size``,
  ``model.dtype``, ``model.remat``).
"""
import gin

from tpu_convrnn import models

model = gin.external_configurable(models.build_model, "model")


def configured_model():
    """The model the parsed gin config describes."""
    return model()
