"""Tools that read a model without changing it: FLOP counts."""
