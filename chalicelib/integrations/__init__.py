"""One package per vendor: its webhook spec and parser, API client, publisher and reconciliation reader."""
