"""tpu_convrnn: task-driven convolutional recurrent networks (Nayebi et al. 2018, 2022).

Model code uses Keras layers and ``keras.ops`` only, so it runs under Keras' TensorFlow backend
(TPUStrategy, the main path) and its JAX backend.

    import tpu_convrnn
    model = tpu_convrnn.load_model("rgc_intermediate", checkpoint="model.keras")
    logits = model(images)                                   # [N, 1000]
    feats = tpu_convrnn.extract_features(model, images, ["conv5", "logits"])  # [T, N, ...]
"""
__version__ = "0.1.0"

from tpu_convrnn.features import extract_features  # noqa: E402
from tpu_convrnn.model.graph import ConvRNN  # noqa: E402
from tpu_convrnn.model.builders import build_model, load_model  # noqa: E402
from tpu_convrnn.model.zoo import RELEASED_MODELS  # noqa: E402

__all__ = ["ConvRNN", "RELEASED_MODELS", "build_model", "extract_features", "load_model"]
