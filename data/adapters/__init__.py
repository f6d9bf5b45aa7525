"""Foreign exports mapped into the data contract: declarative column maps (see ``base.py``)."""
