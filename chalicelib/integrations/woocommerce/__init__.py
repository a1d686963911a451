"""WooCommerce: webhooks, the REST v3 orders reader and the publisher."""
