"""otd-risk: early warning for customer orders that will miss their due date."""

__version__ = "0.1.0"
