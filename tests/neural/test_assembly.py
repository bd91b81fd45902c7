import numpy as np
import pytest
import xarray as xr

from tpu_convrnn.neural.assembly import from_trials, load_assembly


def _arrays(p=6, n=3, b=2, r=4):
    rng = np.random.default_rng(0)
    return dict(trials=rng.normal(size=(r, p, n, b)),
                stimulus_id=np.array([f"im{i}" for i in range(p)]),
                region=np.array(["V4", "V4", "IT"]), time_bin_start=np.array([70.0, 80.0]),
                time_bin_stop=np.array([80.0, 90.0]), object_name=np.array(list("aabbcc")))


def test_npz_and_netcdf_forms_give_the_same_assembly(tmp_path):
    a = _arrays()
    np.savez(tmp_path / "a.npz", **a)
    r, p, n, b = a["trials"].shape
    order = np.random.default_rng(1).permutation(r * p)  # presentations in any order
    flat = a["trials"].reshape(r * p, n, b)[order]
    da = xr.DataArray(flat, dims=("presentation", "neuroid", "time_bin"), name="x", coords={
        "stimulus_id": ("presentation", np.tile(a["stimulus_id"], r)[order]),
        "repetition": ("presentation", np.repeat(np.arange(r), p)[order]),
        "object_name": ("presentation", np.tile(a["object_name"], r)[order]),
        "region": ("neuroid", a["region"]), "time_bin_start": ("time_bin", a["time_bin_start"]),
        "time_bin_stop": ("time_bin", a["time_bin_stop"])})
    da.to_netcdf(tmp_path / "a.nc")
    x, y = load_assembly(str(tmp_path / "a.npz")), load_assembly(str(tmp_path / "a.nc"))
    for name in ("responses", "half1", "half2"):
        np.testing.assert_allclose(getattr(x, name), getattr(y, name))
    np.testing.assert_allclose(x.responses, a["trials"].mean(0))
    np.testing.assert_allclose(x.half1, a["trials"][0::2].mean(0))
    assert list(y.object_name) == list(a["object_name"]) and x.regions == ["IT", "V4"]


def test_bad_inputs_name_the_coordinate_or_sites(tmp_path):
    a = _arrays()
    np.savez(tmp_path / "noregion.npz", **{k: v for k, v in a.items() if k != "region"})
    with pytest.raises(ValueError, match=r"missing coordinate\(s\) \['region'\]"):
        load_assembly(str(tmp_path / "noregion.npz"))
    with pytest.raises(ValueError, match="coordinate 'region' has 2 values but the responses "
                                         "have 3 neuroids"):
        from_trials(**{**a, "region": np.array(["V4", "IT"])})
    bad = a["trials"].copy()
    bad[1, 2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN/Inf at neuroids \[1\] in time bins "
                                         r"\['70-80 ms'\]"):
        from_trials(**{**a, "trials": bad})
    with pytest.raises(ValueError, match="does not exist"):
        load_assembly(str(tmp_path / "none.nc"))
