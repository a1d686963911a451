"""EasyPost: tracker webhooks and the tracker API."""
