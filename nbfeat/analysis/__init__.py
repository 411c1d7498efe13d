"""Analysis that stays in xarray: the `.nbfeat` accessor, PCA, RDMs, RSA, CKA, top-k, plots.

>>> ds.nbfeat.pool("mean").nbfeat.pca(3)          # doctest: +SKIP
>>> nbfeat.compare(dt, method="cka")               # doctest: +SKIP

Submodules load on use: `accessor` (registered when xarray is imported), `transform`
(center, normalize, flatten, pool), `pca`, `rdm` (RDMs and RSA), `cka`, `topk`, `compare`,
`plots` (matplotlib).
"""
