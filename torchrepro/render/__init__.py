"""Small procedural-rendering pieces shared by the synthetic data generators (colours, noise, camera response)."""
