"""``python -m otd_risk``: the CLI, also as a file ``spark-submit`` can run (it takes a ``.py``
file, not a console script): ``spark-submit --master yarn .../otd_risk/__main__.py score ...``."""

from otd_risk.cli import main

if __name__ == "__main__":
    main()
