"""Pure domain types and helpers: ids, names, times. No I/O lives here."""
