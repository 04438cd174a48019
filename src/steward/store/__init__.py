"""Persistence: the metadata database (SQLAlchemy + Alembic) and the content-addressed blob store."""
