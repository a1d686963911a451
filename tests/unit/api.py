"""Constants shared by the HTTP API unit tests."""

TOKEN = "op-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
