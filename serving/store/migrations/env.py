"""Alembic's entry for the serving store: migrations run on the connection the store hands over
(``serving.store.store.upgrade``), never on a URL of their own."""

from alembic import context

from serving.store.tables import METADATA

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=METADATA)
with context.begin_transaction():
    context.run_migrations()
