"""A 3PL warehouse (the hub's documented contract): webhooks and the fulfilment-order API."""
