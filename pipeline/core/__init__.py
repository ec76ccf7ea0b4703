"""The shared core: typed params, file layout, atomic writes, HDF5 caches, media probing,
assets, manifest, the stage runner."""
