"""Layer 6, study: Optuna studies: storage, the stored-results schema, job kinds, the worker loop, worker
processes and the grid's analysis."""
