"""Training and evaluation: the run function, the training loop, evaluation, distribution,
checkpoints, schedules, the objective and the model dir's guarantees."""
