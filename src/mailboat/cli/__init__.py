"""The `mailboat` command line: one module per command group, each registering its sub-parser."""
