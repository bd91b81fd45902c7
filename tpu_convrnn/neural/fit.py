"""Cross-validated linear maps from model features to neural responses, per time bin.

``fit_region(bin_features, assembly, ...)``: for every split of the stimuli (default 10
splits of 90/10, stratified by ``object_name`` when known, seeded) and every time bin b, a
linear map (PLS with 25 components and no scaling, or ridge with its alpha chosen by inner
leave-one-out CV) from the features for bin b (``bin_features(b)`` -> [stimuli, D]: the model
step that covers the bin, see ``temporal``) to every site is fitted on the training stimuli and
scored by Pearson r per site on the held-out ones.

Scores are reported as the median over sites of r, of the noise-corrected r / sqrt(reliability)
and of Brain-Score's explained variance r^2 / reliability, per split (their s.e.m. over splits
is the error bar). Features are requested one bin at a time, so memory stays bounded by one
step's features; ``pca=k`` reduces them with a PCA fitted on the training stimuli of each split
only. Without a given layer, ``fit_region_choosing_layer`` picks each split's layer by inner
cross-validation on that split's training stimuli.
"""
from __future__ import annotations

import numpy as np

from tpu_convrnn.neural.reliability import pearson, split_half_reliability

METHODS = ("pls", "ridge")
RIDGE_ALPHAS = tuple(10.0 ** np.arange(-2, 7))


def make_splits(num_stimuli: int, num_splits: int = 10, test_fraction: float = 0.1,
                object_name=None, seed: int = 0):
    """[(train indices, test indices)]: stratified by ``object_name`` if given."""
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
    idx = np.arange(num_stimuli)
    if object_name is not None:
        splitter = StratifiedShuffleSplit(num_splits, test_size=test_fraction, random_state=seed)
        return list(splitter.split(idx, object_name))
    return list(ShuffleSplit(num_splits, test_size=test_fraction, random_state=seed).split(idx))


class PLS:
    """PLS2 regression without scaling, as sklearn's ``PLSRegression(scale=False)``: each
    component's weight vector is the dominant left singular vector of the deflated X^T Y, which
    NIPALS iterates towards; here it is computed directly from the (targets x targets) Gram
    matrix, so many correlated targets cost no inner iterations."""

    def __init__(self, n_components: int = 25):
        self.n_components = n_components

    def fit(self, x, y):
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64).reshape(len(x), -1)
        self.x_mean, self.y_mean = x.mean(0), y.mean(0)
        xc, yc = x - self.x_mean, y - self.y_mean
        ws, ps, qs, ts = [], [], [], []
        c = xc.T @ yc                                       # [D, targets]
        for _ in range(self.n_components):
            evals, evecs = np.linalg.eigh(c.T @ c)
            w = c @ evecs[:, -1]
            norm = np.linalg.norm(w)
            if norm < 1e-12:
                break
            w /= norm
            # scores of the deflated X without forming it: X_k = X - T P^T
            t = xc @ w - (np.stack(ts, 1) @ (np.stack(ps, 1).T @ w) if ts else 0.0)
            tt = t @ t
            if tt < 1e-12:
                break
            p, q = xc.T @ t / tt, yc.T @ t / tt  # t is orthogonal to earlier scores
            c -= tt * np.outer(p, q)  # = deflated X^T deflated Y (t^T Y = tt q, X^T t = tt p)
            ws.append(w), ps.append(p), qs.append(q), ts.append(t)
        if not ws:
            self.coef = np.zeros((x.shape[1], y.shape[1]))
            return self
        w, p, q = np.stack(ws, 1), np.stack(ps, 1), np.stack(qs, 1)
        self.coef = w @ np.linalg.pinv(p.T @ w) @ q.T
        return self

    def predict(self, x):
        return (np.asarray(x, np.float64) - self.x_mean) @ self.coef + self.y_mean


def regression(method: str, num_train: int, num_features: int, pls_components: int = 25):
    """A regressor (``fit``/``predict``) for ``method``."""
    if method == "pls":
        return PLS(max(1, min(pls_components, num_features, num_train - 1)))
    if method == "ridge":
        from sklearn.linear_model import RidgeCV
        return RidgeCV(alphas=RIDGE_ALPHAS)
    raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}")


def predict_held_out(x_train, y_train, x_test, method: str, pca: int | None = None):
    """Fits on the training stimuli (PCA too, if asked) and predicts the held-out ones.
    Features that are constant over the training stimuli carry nothing and are dropped; with
    none left the prediction is the training mean."""
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    varying = x_train.std(0) > 1e-8 * (np.abs(x_train).max() + 1e-30)
    if not varying.any():
        return np.broadcast_to(y_train.mean(0), (len(x_test), y_train.shape[1])).copy()
    x_train, x_test = x_train[:, varying], x_test[:, varying]
    if pca:
        from sklearn.decomposition import PCA
        reducer = PCA(n_components=min(pca, *x_train.shape), random_state=0).fit(x_train)
        x_train, x_test = reducer.transform(x_train), reducer.transform(x_test)
    mean, std = y_train.mean(0), y_train.std(0) + 1e-12  # targets on one scale for the map
    model = regression(method, len(x_train), x_train.shape[1])
    model.fit(x_train, (y_train - mean) / std)
    return model.predict(x_test).reshape(len(x_test), -1) * std + mean


def score_bins(bin_features, responses, splits, method: str = "pls", pca=None,
               progress=None):
    """Held-out Pearson r [split, bin, site]. ``bin_features(b)`` -> [P, D];
    ``responses`` [P, N, B]."""
    n_sites, n_bins = responses.shape[1], responses.shape[2]
    r = np.full((len(splits), n_bins, n_sites), np.nan)
    for b in range(n_bins):
        x = bin_features(b)
        y = responses[:, :, b]
        for s, (train, test) in enumerate(splits):
            pred = predict_held_out(x[train], y[train], x[test], method, pca)
            # a constant prediction (no information) scores 0, not NaN
            r[s, b] = np.nan_to_num(pearson(pred, y[test], axis=0), nan=0.0)
            if progress is not None:
                progress.update(1)
    return r


def summarize(r, reliability):
    """Per split and bin: medians over sites of r, r / sqrt(rel), r^2 / rel (sites with
    reliability <= 0 are left out of the corrected forms). r [S, B, N], reliability [N, B]."""
    rel = reliability.T[None]  # [1, B, N]
    ok = rel > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        corrected = np.where(ok, r / np.sqrt(np.where(ok, rel, 1)), np.nan)
        explained = np.where(ok, r ** 2 / np.where(ok, rel, 1), np.nan)
    return {"r": np.nanmedian(r, axis=2), "r_corrected": np.nanmedian(corrected, axis=2),
            "ev_ceiled": np.nanmedian(explained, axis=2)}


def fit_region(bin_features, assembly, method="pls", num_splits=10, test_fraction=0.1,
               seed=0, pca=None, progress=None):
    """Scores of one region's assembly (see the module docstring): a dict of
    ``r``/``r_corrected``/``ev_ceiled`` [split, bin], ``site_r`` [split, bin, site] and
    ``reliability`` [site, bin]."""
    splits = make_splits(len(assembly.stimulus_id), num_splits, test_fraction,
                         assembly.object_name, seed)
    r = score_bins(bin_features, assembly.responses, splits, method, pca, progress)
    reliability = split_half_reliability(assembly.half1, assembly.half2)
    return {**summarize(r, reliability), "site_r": r, "reliability": reliability}


def fit_region_choosing_layer(layer_bin_features: dict, assembly, method="pls",
                              num_splits=10, test_fraction=0.1, seed=0, pca=None,
                              inner_splits=3, progress=None):
    """As ``fit_region``, with each split's layer chosen among ``layer_bin_features`` (name ->
    bin_features) by inner cross-validation on that split's training stimuli only; the result
    also has ``layer`` [split]."""
    splits = make_splits(len(assembly.stimulus_id), num_splits, test_fraction,
                         assembly.object_name, seed)
    y = assembly.responses
    r = np.full((len(splits), y.shape[2], y.shape[1]), np.nan)
    chosen = []
    for s, (train, test) in enumerate(splits):
        inner = make_splits(len(train), inner_splits, 0.2, None if assembly.object_name is None
                            else assembly.object_name[train], seed + 1 + s)
        scores = {name: float(np.nanmedian(score_bins(lambda b, f=f: f(b)[train], y[train],
                                                      inner, method, pca)))
                  for name, f in layer_bin_features.items()}
        best = max(scores, key=scores.get)
        chosen.append(best)
        r[s] = score_bins(layer_bin_features[best], y, [(train, test)], method, pca)[0]
        if progress is not None:
            progress.update(y.shape[2])
    reliability = split_half_reliability(assembly.half1, assembly.half2)
    return {**summarize(r, reliability), "site_r": r, "reliability": reliability,
            "layer": chosen}
