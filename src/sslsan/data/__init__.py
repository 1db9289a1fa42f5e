"""Data: manifests, transforms, datasets, the synthetic benchmark and `prepare` for real datasets."""
