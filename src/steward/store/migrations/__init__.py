"""The single Alembic history of the metadata database."""
