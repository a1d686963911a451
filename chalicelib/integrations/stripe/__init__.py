"""Stripe: webhooks and PaymentIntents (authorise, capture, refund, reconcile)."""
