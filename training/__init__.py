"""The training pipeline, installed as ``bair_world.training``.

``python training/train.py`` (or `bair_world.training.train.train(cfg)`) trains a model;
`bair_world.training.config.TrainConfig` and `bair_world.training.presets` describe the runs.
"""
