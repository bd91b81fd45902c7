"""tpu_convrnn: task-driven convolutional recurrent networks (Nayebi et al. 2018, 2022).

Model code uses Keras layers and ``keras.ops`` only, so it runs under Keras' TensorFlow backend
(TPUStrategy, the main path) and its JAX backend.
"""
__version__ = "0.1.0"
