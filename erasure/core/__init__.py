"""Config loading, the factory, registries, seeding, the model cache and the runner."""
