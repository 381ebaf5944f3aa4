"""Built-in filters, one per file, assembled in order by mailboat.app."""
