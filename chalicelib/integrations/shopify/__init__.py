"""Shopify: webhooks (HTTPS, EventBridge), the Admin GraphQL client, the publisher, the orders reader."""
