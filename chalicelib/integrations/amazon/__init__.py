"""Amazon: SP-API notifications, the SP-API client and the publisher (feeds, confirmShipment)."""
