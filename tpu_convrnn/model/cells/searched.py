"""The searched hyperparameters of the released models' cells, in one place.

* ``LSTM_SHALLOW``: the per-layer LSTM cells of lstm_shallow (the original's
  ``configs/lstm_shallow.npz``, spec §4.4);
* ``MEDIAN_CONFIG``: the "median" reciprocal gated cell of rgc_intermediate (spec §4.8), the
  defaults of ``MedianReciprocalGatedCell``.
"""
from __future__ import annotations

from tpu_convrnn.model.initializers import constant, variance_scaling

# configs/lstm_shallow.npz, as spec §4.4 tabulates it.
LSTM_SHALLOW = {
    "conv3": dict(kernel_size=2, depth=128, layer_norm=True, peepholes=False,
                  forget_bias=1.3561755203084322, bias_initializer=constant(1.6427688907776656),
                  kernel_initializer=variance_scaling(0.7008842622125534),
                  weight_decay=5.434329000564743e-06),
    "conv4": dict(kernel_size=3, depth=256, layer_norm=True, peepholes=True,
                  forget_bias=0.977962918535079, bias_initializer=constant(-1.166018906771675),
                  kernel_initializer=variance_scaling(1.8314561102978617),
                  weight_decay=7.612613874483112e-06),
    "conv5": dict(kernel_size=4, depth=256, layer_norm=True, peepholes=False,
                  forget_bias=0.9249280259963113, bias_initializer=constant(-1.3495015766804237),
                  kernel_initializer=variance_scaling(0.8937636886958731),
                  weight_decay=3.038054940623377e-06),
}


# The searched "median" configuration (spec §4.8), as model_func builds it for rgc_intermediate*:
# the median cell params of configs/median_rgcell_cfg.py with the feedback forced to enter at
# "out" through a 1x1 full conv with bias and identity activation.
_TAU = 0.9219348064291611
_GATE = 0.7006566684988862
MEDIAN_CONFIG = dict(
    cell_depth=64, tau_filter_size=7, gate_filter_size=7, tau_depth_separable=True,
    gate_depth_separable=True, tau_nonlinearity="sigmoid", gate_nonlinearity="tanh",
    tau_offset=_TAU, tau_multiplier=-_TAU, gate_offset=_GATE, gate_multiplier=-_GATE,
    input_activation="elu", cell_activation="elu", out_activation="elu", input_to_cell=True,
    ff_filter_size=2, input_to_out=True, in_out_filter_size=3, out_residual=True,
    cell_to_out=False, cell_residual=False, residual_to_out_gate=False, layer_norm=False,
    feedback_entry="out", feedback_filter_size=1, feedback_depth_separable=False,
    feedback_activation="identity", use_bias=True, weight_decay=0.0002033999204146308,
    kernel_initializer=variance_scaling(0.6393378386273998),
)
