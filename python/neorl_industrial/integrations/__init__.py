"""Optional integrations with third-party libraries.

Each submodule needs its own extra and is imported only on demand, never by ``import neorl_industrial``:

* :mod:`neorl_industrial.integrations.sb3`: Stable-Baselines3 (``pip install 'neorl-industrial[sb3]'``).
* :mod:`neorl_industrial.integrations.mlflow`: MLflow tracking (``pip install 'neorl-industrial[mlflow]'``).
* :mod:`neorl_industrial.integrations.rllib`: RLlib environments (``pip install 'neorl-industrial[ray]'``).
"""
