"""ui: a later issue fills this layer (see ARCHITECTURE.md)."""
