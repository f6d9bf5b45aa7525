"""The serving store (``serving.store.store``) and its tables (``serving.store.tables``)."""

from serving.store.store import SERVING_DB, Store, home_store, home_store_url, open_store

__all__ = ["SERVING_DB", "Store", "home_store", "home_store_url", "open_store"]
