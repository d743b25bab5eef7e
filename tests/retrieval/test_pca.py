"""PCA-whitening: whitened training descriptors have identity covariance; output is unit-norm."""

import numpy as np
import pytest
import torch

from torchrepro.core.errors import DataError
from torchrepro.retrieval.pca import PCAWhitening


def test_whitened_training_data_has_identity_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 32)) @ rng.normal(size=(32, 32)) + 3.0
    pca = PCAWhitening(32, 8).fit(x)
    z = ((torch.as_tensor(x, dtype=torch.float32) - pca.mean) @ pca.projection).double().numpy()
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(8), atol=1e-3)
    out = pca(torch.as_tensor(x, dtype=torch.float32))
    assert out.shape == (400, 8)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_pca_errors():
    with pytest.raises(DataError, match="at least 9"):
        PCAWhitening(16, 8).fit(np.zeros((5, 16)))
    with pytest.raises(DataError, match=r"\[N, 16\]"):
        PCAWhitening(16, 8).fit(np.zeros((50, 15)))
    with pytest.raises(RuntimeError, match="before fit"):
        PCAWhitening(16, 8)(torch.zeros(2, 16))
