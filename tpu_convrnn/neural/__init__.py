"""Fitting model dynamics to primate neural responses over time (Nayebi et al. 2018/2022).

    from tpu_convrnn.neural import load_assembly, model_features, compare, write_results
    assembly = load_assembly("assembly.nc")
    feats = model_features(model, images, ["conv3", "conv5"], project=1000)
    ds = compare(feats, assembly, layers={"V4": "conv3", "IT": "conv5"})
    write_results(ds, "results/model")

Command line: ``python -m tpu_convrnn.neural --help``.
"""
from tpu_convrnn.neural.assembly import Assembly, from_trials, load_assembly
from tpu_convrnn.neural.benchmark import compare, model_features, write_results
from tpu_convrnn.neural.reliability import split_half_reliability

__all__ = ["Assembly", "compare", "from_trials", "load_assembly", "model_features",
           "split_half_reliability", "write_results"]
